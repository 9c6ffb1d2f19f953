"""An English part-of-speech tagger and word tokenizer for captions, offline (GKC grounding loss, §3.3).

GKC extracts caption nouns with ``nltk.word_tokenize`` + ``nltk.pos_tag``. Both need data that
``nltk.download`` fetches from a server this project cannot rely on. :func:`load_tagger` finds a
tagger in this order and never touches the network:

1. nltk's own data (``nltk.data.path``, ``$NLTK_DATA``) holding ``taggers/averaged_perceptron_tagger_eng``
   (what ``nltk.download("averaged_perceptron_tagger_eng")`` installs);
2. otherwise it **assembles** that folder under ``<cache>/nltk_data`` (``$OVLAB_CACHE`` or
   ``~/.cache/ovlab``, as WordNet) from the PyPI package ``textblob-aptagger`` (a project
   dependency). That wheel ships ``trontagger-0.1.0.pickle``: Matthew Honnibal's greedy averaged
   perceptron trained on the WSJ Penn Treebank — the model nltk's ``PerceptronTagger`` was ported
   from, with the same features and the same 45 Penn tags, so nltk runs it unchanged. The pickle is
   read with an unpickler that only admits ``set`` (no code can run), and written as nltk ≥ 3.9's
   three JSON files (weights, tag dictionary, classes) — plain files, no links. Its weights are
   not those of the model ``nltk.download`` serves today, so a few words can be tagged differently
   (e.g. "jumps" NNS vs VBZ in "the quick brown fox jumps"); nouns in captions agree in practice.
3. otherwise :class:`TaggerNotFoundError` naming both remedies.

Tokenisation (:func:`tokenize`): ``nltk.word_tokenize`` when the ``punkt_tab`` data is present;
otherwise the same word tokenizer (``NLTKWordTokenizer``, a regex tokenizer that needs no data)
after an **untrained** Punkt sentence splitter (no abbreviation list: "Mr." may end a sentence,
which only matters for multi-sentence text).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
from pathlib import Path

from ovlab.vocab.wordnet import default_cache_dir

RESOURCE = "taggers/averaged_perceptron_tagger_eng"
FILES = tuple(f"averaged_perceptron_tagger_eng.{part}.json" for part in ("weights", "tagdict", "classes"))
SOURCE_DIST = "textblob-aptagger"
SOURCE_FILE = "trontagger-0.1.0.pickle"
MARKER = ".ovlab-assembled-from"
NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})
"""Penn Treebank noun tags GKC keeps (GKC ``detr_panoptic_caption_syn_kd_dataset_mapper.py``)."""


class TaggerNotFoundError(LookupError):
    """No English POS tagger in nltk's data and none can be assembled offline."""


def _remedy() -> str:
    return (f"Remedies: (1) `pip install {SOURCE_DIST}` (a dependency of ovlab: `make setup` / "
            "`bash scripts/setup.sh` installs it), then ovlab assembles the tagger offline; or (2) put nltk's "
            "'averaged_perceptron_tagger_eng' in a folder on $NLTK_DATA (`python -m nltk.downloader -d ~/nltk_data "
            "averaged_perceptron_tagger_eng` on a machine with network, then copy it).")


def _source_pickle() -> Path:
    from importlib import metadata

    try:
        files = metadata.files(SOURCE_DIST) or []
    except metadata.PackageNotFoundError:
        raise TaggerNotFoundError(f"no English POS tagger: nltk has no '{RESOURCE}' and the package "
                                  f"{SOURCE_DIST} is not installed. {_remedy()}") from None
    for f in files:
        if f.name == SOURCE_FILE:
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise TaggerNotFoundError(f"{SOURCE_DIST} is installed but {SOURCE_FILE} is missing from it. {_remedy()}")


class _SetOnlyUnpickler(pickle.Unpickler):
    """Admits the builtin ``set`` and nothing else: loading cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("__builtin__", "set"), ("builtins", "set")}:
            return set
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the tagger pickle")


def read_source_model(path: str | os.PathLike) -> tuple[dict, dict, list]:
    """Read ``(weights, tagdict, classes)`` from textblob-aptagger's pickle, safely.

    Returns:
        weights ``{feature: {tag: float}}``, tagdict ``{word: tag}``, sorted classes ``[tag]``.

    Raises:
        TaggerNotFoundError: the file is not the expected model (names the file).
    """
    try:
        with open(path, "rb") as f:
            weights, tagdict, classes = _SetOnlyUnpickler(f, encoding="latin-1").load()
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as e:
        raise TaggerNotFoundError(f"{path}: not a readable averaged-perceptron model ({e}). {_remedy()}") from None
    ok = (isinstance(weights, dict) and isinstance(tagdict, dict) and isinstance(classes, set)
          and all(isinstance(v, dict) for v in weights.values()) and "NN" in classes)
    if not ok:
        raise TaggerNotFoundError(f"{path}: unexpected content (weights, tagdict, classes). {_remedy()}")
    return weights, tagdict, sorted(classes)


def assemble_tagger(cache_dir: str | os.PathLike | None = None, source: str | os.PathLike | None = None) -> Path:
    """Write nltk's ``averaged_perceptron_tagger_eng`` folder under ``<cache>/nltk_data`` from textblob-aptagger.

    Idempotent: nothing is rewritten when the marker records the same source digest and the three
    files exist; each file is replaced atomically (safe when run concurrently).

    Args:
        cache_dir: the ovlab cache (default ``$OVLAB_CACHE`` or ``~/.cache/ovlab``).
        source: the pickle (default: the installed textblob-aptagger's).

    Returns:
        the ``nltk_data`` root (put it on ``nltk.data.path`` / ``$NLTK_DATA``).

    Raises:
        TaggerNotFoundError: the source is absent or unreadable (the message gives the remedies).
    """
    from ovlab.atomic import write_text

    src = Path(source) if source is not None else _source_pickle()
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    nltk_root = root / "nltk_data"
    dest = nltk_root / RESOURCE
    stamp = f"{SOURCE_DIST}:{SOURCE_FILE}:sha256={digest}\n"
    marker = dest / MARKER
    if marker.is_file() and marker.read_text() == stamp and all((dest / f).is_file() for f in FILES):
        return nltk_root
    weights, tagdict, classes = read_source_model(src)
    dest.mkdir(parents=True, exist_ok=True)
    for name, obj in zip(FILES, (weights, tagdict, classes)):
        write_text(dest / name, json.dumps(obj, sort_keys=True))
    write_text(marker, stamp)
    return nltk_root


def _nltk_tagger_dir() -> Path | None:
    import nltk

    try:
        return Path(str(nltk.data.find(RESOURCE + "/")))
    except LookupError:
        return None


def find_tagger(cache_dir: str | os.PathLike | None = None) -> tuple[str, Path]:
    """Locate (or assemble) the tagger without the network.

    Returns:
        ``("nltk", folder)`` when nltk's data has it, else ``("assembled", folder)``.

    Raises:
        TaggerNotFoundError: neither (the message gives the remedies).
    """
    found = _nltk_tagger_dir()
    if found is not None:
        return ("assembled" if (found / MARKER).is_file() else "nltk"), found
    nltk_root = assemble_tagger(cache_dir)
    return "assembled", nltk_root / RESOURCE


@functools.lru_cache(maxsize=4)
def _load(folder: str):
    import nltk
    from nltk.tag.perceptron import PerceptronTagger

    nltk_root = str(Path(folder).parent.parent)
    if nltk_root not in [str(p) for p in nltk.data.path]:
        nltk.data.path.append(nltk_root)  # nltk only opens files under its data roots
    return PerceptronTagger(lang="eng")


def load_tagger(cache_dir: str | os.PathLike | None = None):
    """nltk's ``PerceptronTagger`` for English, found as :func:`find_tagger` says (cached per folder).

    Raises:
        TaggerNotFoundError: see :func:`find_tagger`.
    """
    _, folder = find_tagger(cache_dir)
    return _load(str(folder))


@functools.lru_cache(maxsize=1)
def _punkt_available() -> bool:
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
        return True
    except LookupError:
        return False


def tokenize(text: str) -> list[str]:
    """Word tokens of ``text``: ``nltk.word_tokenize`` if punkt is installed, else the same word
    tokenizer after an untrained Punkt sentence splitter (see the module docstring)."""
    import nltk
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    if _punkt_available():
        return nltk.word_tokenize(text)
    words = NLTKWordTokenizer()
    return [w for sentence in PunktSentenceTokenizer().tokenize(text) for w in words.tokenize(sentence)]


def pos_tag(tokens: list[str], cache_dir: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """Penn Treebank tags of ``tokens`` (``nltk.pos_tag`` equivalent, offline).

    Raises:
        TaggerNotFoundError: no tagger (see :func:`find_tagger`).
    """
    return load_tagger(cache_dir).tag(list(tokens))
