"""Synonym sets: GKC's name normalisation, filters in order, curated overrides, metrics."""

from __future__ import annotations

import pytest

from ovlab.config import SynonymsParams
from ovlab.vocab import normalize_class_name, split_multi_name
from ovlab.vocab.overrides import CurationError, Overrides, load_overrides
from ovlab.vocab.synonyms import build_synonyms, class_synonyms, synonym_metrics, synonym_table


@pytest.mark.parametrize("raw,expected", [
    ("wall-other-merged", "wall"), ("door-stuff", "door stuff"), ("wall-brick", "wall brick"),
    ("sky-other-merged", "sky"), ("tree-merged", "tree"), ("water-other", "water"), ("tv", "tv"),
    ("playingfield", "playingfield"), ("floor-other-merged", "floor"),
])
def test_gkc_normalisation(raw, expected):
    assert normalize_class_name(raw) == expected


def test_multi_names():
    assert split_multi_name("wall, brick wall") == ["wall", "brick wall"]
    assert split_multi_name("bag_or_package") == ["bag", "package"]
    assert split_multi_name("traffic_light") == ["traffic light"]


def test_uncurated_rock_keeps_the_noise_the_paper_filters(wordnet):
    s = class_synonyms("rock-merged", "rock", wordnet, SynonymsParams(), Overrides())
    assert s.names[0] == "rock"
    assert "rock and roll" in s.names and "stone" in s.names  # the paper's example of noise
    assert "John Rock" in s.removed["proper_noun"] and "Rock" not in s.names
    assert not s.needs_curation and s.in_wordnet


def test_filters_apply_in_order(wordnet):
    p = SynonymsParams.model_validate({"filters": {"max_words": 2, "blocklist": ["stone"]}})
    s = class_synonyms("rock-merged", "rock", wordnet, p, Overrides())
    assert "rock and roll" in s.removed["too_long"]
    assert "rock 'n' roll" in s.removed["too_long"]
    assert s.removed["blocklist"] == ["stone"]
    assert "stone" not in s.names and "rock and roll" not in s.names
    assert set(s.names) == {"rock", "rock candy", "rock'n'roll", "rock-and-roll", "rock music", "careen", "sway", "tilt"}


def test_curated_senses_remove_and_add(wordnet, tmp_path):
    f = tmp_path / "cur.yaml"
    f.write_text(
        "classes:\n"
        "  rock: {senses: [rock.n.01, rock.n.02], add: [boulder], note: stone only}\n"
        "  wall brick: {add: [brick wall]}\n"
    )
    ov = load_overrides(f, vocabulary=["rock", "wall brick", "boat"], wordnet=wordnet)
    sets = build_synonyms(["rock-merged", "wall-brick", "boat"], wordnet, SynonymsParams(), ov)
    table = synonym_table(sets)
    assert table["rock"] == ["rock", "stone", "boulder"]
    assert table["wall brick"] == ["wall brick", "brick wall"]
    assert "gravy boat" in table["boat"]  # not curated here: WordNet's dish sense stays
    m = synonym_metrics(sets)
    assert m["classes"] == 3 and m["curated_classes"] == 2 and m["not_in_wordnet"] == 1
    assert m["names_total"] == 3 + 2 + len(table["boat"]) and m["needs_curation"] == 0


def test_multiword_name_missing_from_wordnet_is_listed(wordnet):
    s = class_synonyms("wall-brick", "wall brick", wordnet, SynonymsParams(), Overrides())
    assert s.names == ["wall brick"] and s.needs_curation and not s.in_wordnet


def test_hypernyms_and_hyponyms_are_opt_in(wordnet):
    ov = load_overrides(None)
    plain = class_synonyms("bus", "bus", wordnet, SynonymsParams(), ov)
    p = SynonymsParams.model_validate({"wordnet": {"hypernyms": True}})
    wide = class_synonyms("bus", "bus", wordnet, p, ov)
    assert "public transport" in wide.names and "public transport" not in plain.names


def test_bad_curation_entries_are_named(wordnet, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("classes:\n  rokc: {}\n  rock: {senses: [rock.n.9], add: [Stone], remove: [stone]}\n")
    with pytest.raises(CurationError) as err:
        load_overrides(f, vocabulary=["rock"], wordnet=wordnet)
    msg = str(err.value)
    assert "classes.rokc: not a class" in msg
    assert "classes.rock.senses: 'rock.n.9' is not a noun sense" in msg
    assert "both added and removed" in msg
    f.write_text("classes:\n  rock: {sense: [rock.n.01]}\n")
    with pytest.raises(CurationError, match="classes.rock.sense: unknown key"):
        load_overrides(f)


@pytest.mark.parametrize("body, needle", [
    (b"", "the curation file is empty"),
    (b"# every entry deleted by mistake\n", "the curation file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\xff", "not a UTF-8 text file"),
    (b"- rock\n- boat\n", "expected a mapping with `blocklist` and `classes`, got list"),
    (b"classes: {rock: {add: [x]}\n", "invalid YAML"),
])
def test_corrupt_or_emptied_curation_file_is_one_named_error(tmp_path, body, needle):
    f = tmp_path / "curation.yaml"
    f.write_bytes(body)
    with pytest.raises(CurationError, match=needle) as err:
        load_overrides(f, vocabulary=["rock", "boat"])
    assert str(err.value).startswith(str(f))
    f.write_text("classes: {}\n")  # an empty curation on purpose is allowed
    assert load_overrides(f).classes == {}


def test_colliding_normalised_names_are_an_error(wordnet):
    with pytest.raises(ValueError, match="collide"):
        build_synonyms(["wall-merged", "wall-other-merged"], wordnet, SynonymsParams(), Overrides())
