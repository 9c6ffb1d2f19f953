"""WordNet 3.0, offline.

:func:`load_wordnet` finds WordNet in this order and never touches the network:

1. nltk's own data (``nltk.data.path``, which includes ``$NLTK_DATA``) if it holds ``corpora/wordnet``;
2. a system WordNet dict (Debian/Ubuntu ``wordnet-base`` + ``wordnet-sense-index`` install it in
   ``/usr/share/wordnet``; ``$WNSEARCHDIR`` or ``$WNHOME/dict`` point elsewhere), assembled into an
   nltk-readable folder ``<cache>/nltk_data/corpora/wordnet`` with symbolic links and a generated
   ``lexnames`` file (the 45 standard lexicographer files, which Debian does not ship);
3. otherwise :class:`WordNetNotFoundError` naming both remedies.
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings
from pathlib import Path

# The 45 WordNet 3.0 lexicographer files: (number, name, syntactic category 1=noun 2=verb 3=adj 4=adv).
# Facts from lexnames(5WN); nltk's reader needs them as the ``lexnames`` file.
LEXNAMES: tuple[tuple[int, str, int], ...] = tuple(
    (i, name, cat)
    for i, (name, cat) in enumerate(
        [("adj.all", 3), ("adj.pert", 3), ("adv.all", 4)]
        + [(f"noun.{n}", 1) for n in (
            "Tops act animal artifact attribute body cognition communication event feeling food group "
            "location motive object person phenomenon plant possession process quantity relation shape "
            "state substance time").split()]
        + [(f"verb.{n}", 2) for n in (
            "body change cognition communication competition consumption contact creation emotion "
            "motion perception possession social stative weather").split()]
        + [("adj.ppl", 3)]
    )
)

# Files nltk's WordNetCorpusReader opens (``lexnames`` is generated, the rest come from the system dict).
SYSTEM_FILES: tuple[str, ...] = (
    "data.noun", "data.verb", "data.adj", "data.adv",
    "index.noun", "index.verb", "index.adj", "index.adv",
    "noun.exc", "verb.exc", "adj.exc", "adv.exc",
    "cntlist.rev", "index.sense",
)

DEFAULT_SYSTEM_DIRS: tuple[str, ...] = ("/usr/share/wordnet", "/usr/local/share/wordnet", "/usr/share/wordnet/dict")


# Written into an assembled folder (content: the system dict it came from), so that a later search
# through $NLTK_DATA still reports the source as "system".
MARKER = ".ovlab-assembled-from"


class WordNetNotFoundError(LookupError):
    """WordNet 3.0 is neither in nltk's data nor installed as a system dict."""


def lexnames_text() -> str:
    """The ``lexnames`` file content: ``NN<TAB>name<TAB>category`` per line, 45 lines."""
    return "".join(f"{i:02d}\t{name}\t{cat}\n" for i, name, cat in LEXNAMES)


def default_cache_dir() -> Path:
    """``$OVLAB_CACHE`` or ``~/.cache/ovlab``: where the nltk-readable WordNet folder is assembled."""
    return Path(os.environ.get("OVLAB_CACHE") or Path.home() / ".cache" / "ovlab")


def _nltk_wordnet_dir() -> Path | None:
    import nltk

    for name in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
        try:
            found = nltk.data.find(name)
        except LookupError:
            continue
        return Path(str(found))
    return None


def _system_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("WNSEARCHDIR"):
        dirs.append(Path(os.environ["WNSEARCHDIR"]))
    if os.environ.get("WNHOME"):
        dirs.append(Path(os.environ["WNHOME"]) / "dict")
    dirs.extend(Path(d) for d in DEFAULT_SYSTEM_DIRS)
    return dirs


def assemble_system_wordnet(system_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Build ``<cache>/nltk_data/corpora/wordnet`` from a system WordNet dict.

    Copies each file of :data:`SYSTEM_FILES` (skipping those already copied) and writes the
    generated ``lexnames``. Idempotent; safe to call concurrently (each file is replaced atomically).

    Returns:
        the ``nltk_data`` root to put on ``nltk.data.path`` / ``$NLTK_DATA``.

    Raises:
        WordNetNotFoundError: ``system_dir`` lacks one of the files (the message names them and the
            Debian packages that provide them).
    """
    src = Path(system_dir)
    missing = [f for f in SYSTEM_FILES if not (src / f).is_file()]
    if missing:
        raise WordNetNotFoundError(
            f"{src} is not a complete WordNet 3.0 dict: missing {', '.join(missing)} "
            "(Debian/Ubuntu: apt-get install wordnet-base wordnet-sense-index)"
        )
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    nltk_root = root / "nltk_data"
    dest = nltk_root / "corpora" / "wordnet"
    dest.mkdir(parents=True, exist_ok=True)
    for name in SYSTEM_FILES:
        target = dest / name
        source = src / name
        if target.is_file() and not target.is_symlink() and target.stat().st_size == source.stat().st_size:
            continue
        # A plain copy (about 36 MB): nltk >= 3.10 refuses symbolic links that resolve outside its
        # data roots and multiply-linked files, so neither kind of link will do.
        tmp = dest / f".{name}.{os.getpid()}.tmp"
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    from ovlab.atomic import write_text

    lex = dest / "lexnames"
    if not lex.is_file() or lex.read_text() != lexnames_text():
        write_text(lex, lexnames_text())
    marker = dest / MARKER
    if not marker.is_file() or marker.read_text() != str(src.resolve()):
        write_text(marker, str(src.resolve()))
    return nltk_root


def find_wordnet(cache_dir: str | os.PathLike | None = None) -> tuple[str, Path]:
    """Locate WordNet without the network.

    Returns:
        ``(source, path)``: ``("nltk", <corpora/wordnet folder>)`` or
        ``("system", <assembled corpora/wordnet folder>)``.

    Raises:
        WordNetNotFoundError: neither is present; the message gives both remedies.
    """
    found = _nltk_wordnet_dir()
    if found is not None:
        return ("system" if (found / MARKER).is_file() else "nltk"), found
    for d in _system_dirs():
        if (d / "data.noun").is_file():
            nltk_root = assemble_system_wordnet(d, cache_dir)
            return "system", nltk_root / "corpora" / "wordnet"
    searched = ", ".join(str(d) for d in _system_dirs())
    raise WordNetNotFoundError(
        "WordNet 3.0 not found. ovlab looked in nltk's data path and in the system dicts "
        f"({searched}). Remedies: (1) on Debian/Ubuntu, `apt-get install wordnet-base wordnet-sense-index` "
        "(the README's set-up does this); or (2) put nltk's 'wordnet' corpus in a folder on $NLTK_DATA "
        "(e.g. `python -m nltk.downloader -d ~/nltk_data wordnet` on a machine with network, then copy it)."
    )


@functools.lru_cache(maxsize=4)
def _load(path: str):
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    # nltk >= 3.9 only opens files under its data roots: make the assembled root one of them.
    nltk_root = str(Path(path).parent.parent)
    if nltk_root not in [str(p) for p in nltk.data.path]:
        nltk.data.path.append(nltk_root)
    with warnings.catch_warnings():  # "multilingual functions are not available": OMW is not needed
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(path, None)


def load_wordnet(cache_dir: str | os.PathLike | None = None):
    """Return an nltk ``WordNetCorpusReader`` for WordNet 3.0, found as :func:`find_wordnet` says.

    The reader is cached per folder. Non-English lookups (``lang=...``) are unavailable (no OMW).

    Raises:
        WordNetNotFoundError: see :func:`find_wordnet`.
    """
    _, path = find_wordnet(cache_dir)
    return _load(str(path))


def nltk_data_dir(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The ``nltk_data`` root to export as ``$NLTK_DATA`` so that ``nltk.corpus.wordnet`` works too.

    ``None`` when nltk already finds WordNet on its own.
    """
    source, path = find_wordnet(cache_dir)
    return None if source == "nltk" else path.parent.parent
