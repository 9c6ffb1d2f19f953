"""Values of the curated COCO-panoptic-133 synonym sets (GKC §3.1).

Computed exactly as the ``synonyms`` stage does, with default ``SynonymsParams()`` and the shipped
curation file ``ovlab/vocab/curation/coco_panoptic_133.yaml``. WordNet is part of the set-up: if it
cannot be loaded these tests fail (they never skip).
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import pytest

from ovlab.config import SynonymsParams
from ovlab.data.categories import load_categories
from ovlab.vocab import load_wordnet
from ovlab.data.names import normalize_class_name
from ovlab.vocab.overrides import load_overrides
from ovlab.vocab.synonyms import build_synonyms, synonym_metrics

REPO = Path(__file__).resolve().parents[1]
CURATION = REPO / "ovlab" / "vocab" / "curation" / "coco_panoptic_133.yaml"

# Snapshot of the curated result; change deliberately together with the YAML.
NAMES_TOTAL = 240
SINGLE_NAME_CLASSES = 64
MEAN_BAND = (1.5, 3.0)
MAX_NAMES = 4

# Classes WordNet does not know (as normalised); all but "stop sign" get added names.
NOT_IN_WORDNET = {
    "stop sign", "sports ball", "wine glass", "potted plant", "cell phone", "door stuff",
    "floor wood", "mirror stuff", "playingfield", "wall brick", "wall stone", "wall tile",
    "wall wood",
}


@pytest.fixture(scope="module")
def wn():
    # No skip on purpose: WordNetNotFoundError propagates and the tests error out.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_wordnet()


@pytest.fixture(scope="module")
def raw_names():
    return [c.name for c in load_categories("coco_panoptic_133")]


@pytest.fixture(scope="module")
def vocab(raw_names):
    return [normalize_class_name(n) for n in raw_names]


@pytest.fixture(scope="module")
def overrides(wn, vocab):
    return load_overrides(CURATION, vocabulary=vocab, wordnet=wn)


@pytest.fixture(scope="module")
def sets(wn, raw_names, overrides):
    return build_synonyms(raw_names, wn, SynonymsParams(), overrides)


@pytest.fixture(scope="module")
def by_name(sets):
    return {s.canonical: s for s in sets}


# ------------------------------------------------------------------ the file itself


def test_default_params_point_at_this_file():
    assert SynonymsParams().overrides == "ovlab/vocab/curation/coco_panoptic_133.yaml"
    assert CURATION.is_file()


def test_file_validates_and_covers_every_class(overrides, vocab):
    assert len(vocab) == 133
    assert set(overrides.classes) == set(vocab)
    assert overrides.blocklist == []
    for cls, entry in overrides.classes.items():
        assert entry.note.strip(), f"{cls}: entry without a note"


def test_every_wordnet_class_has_pinned_nonempty_senses(overrides, by_name):
    for cls, entry in overrides.classes.items():
        s = by_name[cls]
        if s.in_wordnet:
            assert entry.senses, f"{cls}: senses not pinned"
            assert s.senses == [x for x in s.senses if x in entry.senses]
            assert len(s.senses) == len(entry.senses), f"{cls}: a pinned sense was not used"
        else:
            assert entry.senses is None
            assert s.senses == []


def test_no_dead_removes_and_no_redundant_adds(overrides, by_name):
    for cls, entry in overrides.classes.items():
        s = by_name[cls]
        assert set(entry.remove) <= set(s.candidates), f"{cls}: remove names no WordNet candidate"
        assert not set(entry.add) & set(s.candidates), f"{cls}: add repeats a WordNet candidate"
        assert s.removed["curated"] == [n for n in s.candidates if n in entry.remove]


# ------------------------------------------------------------------ global properties


def test_names_start_with_canonical_and_are_unique(sets):
    for s in sets:
        assert s.names[0] == s.canonical
        assert len(s.names) == len(set(s.names)), s.canonical
        assert len({n.lower() for n in s.names}) == len(s.names), s.canonical


def test_names_are_clean_labels(sets):
    for s in sets:
        for n in s.names:
            assert n == n.strip() and n == n.lower(), (s.canonical, n)
            assert "_" not in n, (s.canonical, n)
            assert 1 <= len(n.split()) <= 3, (s.canonical, n)


def test_no_class_needs_curation(sets):
    assert not [s.canonical for s in sets if s.needs_curation]


def test_no_name_labels_two_classes(sets):
    counts = Counter(n.lower() for s in sets for n in s.names)
    assert [n for n, k in counts.items() if k > 1] == []


def test_totals(sets):
    m = synonym_metrics(sets)
    assert m["classes"] == 133
    assert m["names_total"] == NAMES_TOTAL
    assert m["names_per_class_mean"] == round(NAMES_TOTAL / 133, 4)
    assert MEAN_BAND[0] <= m["names_per_class_mean"] <= MEAN_BAND[1]
    assert m["names_per_class_max"] == MAX_NAMES
    assert m["single_name_classes"] == SINGLE_NAME_CLASSES
    assert m["not_in_wordnet"] == len(NOT_IN_WORDNET)
    assert m["needs_curation"] == 0
    assert m["removed_too_long"] == 0
    assert m["removed_blocklist"] == 0


def test_not_in_wordnet_classes_get_names(by_name):
    assert {c for c, s in by_name.items() if not s.in_wordnet} == NOT_IN_WORDNET
    for cls in NOT_IN_WORDNET - {"stop sign"}:
        assert len(by_name[cls].names) >= 2, cls
    assert by_name["stop sign"].names == ["stop sign"]


# ------------------------------------------------------------------ class-specific values


def test_rock_keeps_stone_drops_music_candy_person_motion(by_name):
    rock = by_name["rock"]
    assert rock.raw_name == "rock-merged"
    assert rock.senses == ["rock.n.01", "rock.n.02"]
    assert rock.names == ["rock", "stone"]
    for bad in ("rock and roll", "rock 'n' roll", "rock'n'roll", "rock-and-roll", "rock music",
                "rock candy", "John Rock", "careen", "sway", "tilt"):
        assert bad not in rock.names


def test_boat_has_no_gravy_boat(by_name):
    boat = by_name["boat"]
    assert boat.senses == ["boat.n.01"]
    assert boat.names == ["boat", "ship"]
    for bad in ("gravy boat", "gravy holder", "sauceboat"):
        assert bad not in boat.names


def test_mouse_is_the_computer_mouse(wn, by_name):
    mouse = by_name["mouse"]
    assert mouse.senses == ["mouse.n.04"]
    assert mouse.names == ["mouse", "computer mouse"]
    assert all(wn.synset(x).lexname() == "noun.artifact" for x in mouse.senses)
    rodent = {lem.replace("_", " ") for s in [wn.synset("mouse.n.01"), wn.synset("rodent.n.01")]
              for h in [s, *s.hyponyms()] for lem in h.lemma_names()}
    assert not (set(mouse.names) - {"mouse"}) & rodent
    assert "black eye" not in mouse.names and "shiner" not in mouse.names


def test_sense_restricted_objects(by_name):
    assert by_name["remote"].names == ["remote", "remote control"]
    assert by_name["tie"].names == ["tie", "necktie"]
    assert by_name["orange"].senses == ["orange.n.01"] and by_name["orange"].names == ["orange"]
    assert by_name["kite"].senses == ["kite.n.03"]
    assert by_name["banana"].senses == ["banana.n.02"]
    assert "banana tree" not in by_name["banana"].names
    assert by_name["bridge"].senses == ["bridge.n.01"]
    assert by_name["counter"].senses == ["counter.n.01"]
    assert "sideboard" not in by_name["counter"].names
    assert by_name["platform"].senses == ["platform.n.01"]
    assert by_name["car"].names == ["car", "auto", "automobile", "motorcar"]
    assert by_name["light"].names == ["light", "lamp", "light fixture"]
    assert by_name["window"].names == ["window", "windowpane"]
    for bad in ("railroad tie", "crosstie", "sleeper", "affiliation", "draw"):
        assert bad not in by_name["tie"].names
    assert "internet" not in by_name["net"].names and "network" not in by_name["net"].names


def test_cross_class_homographs_removed(by_name):
    assert "bike" in by_name["bicycle"].names
    assert "bike" not in by_name["motorcycle"].names
    assert "motorbike" in by_name["motorcycle"].names
    assert "dog" not in by_name["hot dog"].names
    assert "board" not in by_name["dining table"].names
    assert "table" not in by_name["dining table"].names
    assert "bag" not in by_name["handbag"].names and "bag" not in by_name["suitcase"].names


def test_slang_and_loose_names_removed(by_name):
    tv = by_name["tv"]
    assert tv.names == ["tv", "television", "television set", "tv set"]
    toilet = by_name["toilet"]
    for bad in ("can", "crapper", "pot", "potty", "throne", "john", "bathroom", "lavatory"):
        assert bad not in toilet.names
    assert "machine" not in by_name["car"].names
    assert "teddy" not in by_name["teddy bear"].names
    person = by_name["person"]
    assert person.names == ["person", "individual", "human"]


def test_multiword_classes_not_in_wordnet(by_name):
    assert by_name["wall brick"].raw_name == "wall-brick"
    assert by_name["wall brick"].names == ["wall brick", "brick wall", "brickwork"]
    assert by_name["wall stone"].names == ["wall stone", "stone wall", "stonework"]
    assert by_name["wall tile"].names[1] == "tiled wall"
    assert by_name["wall wood"].names[1] == "wooden wall"
    assert by_name["floor wood"].names[1] == "wooden floor"
    assert by_name["door stuff"].names == ["door stuff", "door"]
    assert by_name["mirror stuff"].names == ["mirror stuff", "mirror"]
    assert by_name["sports ball"].names == ["sports ball", "ball"]
    assert by_name["wine glass"].names == ["wine glass", "wineglass"]
    assert "playing field" in by_name["playingfield"].names
    assert "houseplant" in by_name["potted plant"].names
    assert "mobile phone" in by_name["cell phone"].names
    for cls in NOT_IN_WORDNET:
        assert by_name[cls].names[1:] == by_name[cls].added


def test_merged_stuff_classes(by_name):
    assert by_name["wall"].raw_name == "wall-other-merged"
    assert by_name["wall"].names == ["wall"]  # no rampart / bulwark
    assert by_name["water"].names == ["water"]  # no urine lemmas, no H2O
    assert by_name["water"].removed["proper_noun"] == ["H2O"]
    assert by_name["dirt"].names == ["dirt", "soil"]
    assert by_name["grass"].names == ["grass"]  # no marijuana slang
    assert by_name["rug"].names == ["rug", "carpet", "carpeting"]
    assert by_name["sea"].names == ["sea", "ocean"]
    assert by_name["cabinet"].names == ["cabinet", "cupboard"]
    assert by_name["railroad"].senses == ["railroad_track.n.01"]
