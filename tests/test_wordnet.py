"""WordNet offline: nltk's data first, then the Debian dict assembled with a generated lexnames."""

from __future__ import annotations

from pathlib import Path

import pytest

import ovlab.vocab.wordnet as wnmod
from ovlab.vocab.wordnet import (
    LEXNAMES,
    SYSTEM_FILES,
    WordNetNotFoundError,
    assemble_system_wordnet,
    find_wordnet,
    lexnames_text,
)

DEBIAN = Path("/usr/share/wordnet")


def test_lexnames_table_is_the_standard_one():
    assert len(LEXNAMES) == 45
    lines = lexnames_text().splitlines()
    assert lines[0] == "00\tadj.all\t3"
    assert lines[3] == "03\tnoun.Tops\t1"
    assert lines[5] == "05\tnoun.animal\t1"
    assert lines[28] == "28\tnoun.time\t1"
    assert lines[29] == "29\tverb.body\t2"
    assert lines[43] == "43\tverb.weather\t2"
    assert lines[44] == "44\tadj.ppl\t3"


@pytest.mark.skipif(not (DEBIAN / "data.noun").is_file(), reason="Debian wordnet-base not installed")
def test_debian_files_load_through_the_assembled_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(wnmod, "_nltk_wordnet_dir", lambda: None)  # as on a machine without nltk data
    source, path = find_wordnet(tmp_path)
    assert source == "system" and path == tmp_path / "nltk_data/corpora/wordnet"
    assert (path / "lexnames").read_text() == lexnames_text()
    for f in SYSTEM_FILES:
        assert (path / f).is_file() and not (path / f).is_symlink()
    wn = wnmod._load.__wrapped__(str(path))
    assert wn.get_version() == "3.0"
    dog = wn.synset("dog.n.01")
    assert dog.lexname() == "noun.animal"
    assert "canine.n.02" in [h.name() for h in dog.hypernyms()]
    assert wn.morphy("buses", "n") == "bus"
    assert sum(1 for _ in wn.all_synsets("n")) == 82115
    assert [s.name() for s in wn.synsets("rock", pos="n")][:2] == ["rock.n.01", "rock.n.02"]
    # idempotent, and a second search reports the same source even through $NLTK_DATA
    assert assemble_system_wordnet(DEBIAN, tmp_path) == tmp_path / "nltk_data"


def test_nltk_data_wins_over_the_system_dict(tmp_path, monkeypatch):
    fake = tmp_path / "nltk_data" / "corpora" / "wordnet"
    fake.mkdir(parents=True)
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data")])
    source, path = find_wordnet(tmp_path / "cache")
    assert source == "nltk" and Path(path) == fake
    assert not (tmp_path / "cache").exists()  # nothing assembled


def test_absent_wordnet_names_both_remedies(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])
    monkeypatch.setattr(wnmod, "DEFAULT_SYSTEM_DIRS", (str(tmp_path / "none"),))
    monkeypatch.delenv("WNSEARCHDIR", raising=False)
    monkeypatch.delenv("WNHOME", raising=False)
    monkeypatch.delenv("NLTK_DATA", raising=False)
    with pytest.raises(WordNetNotFoundError) as err:
        find_wordnet(tmp_path / "cache")
    msg = str(err.value)
    assert "apt-get install wordnet-base wordnet-sense-index" in msg and "NLTK_DATA" in msg


def test_incomplete_system_dict_is_named(tmp_path):
    d = tmp_path / "dict"
    d.mkdir()
    (d / "data.noun").write_text("")
    with pytest.raises(WordNetNotFoundError, match="missing .*index.sense"):
        assemble_system_wordnet(d, tmp_path / "cache")
