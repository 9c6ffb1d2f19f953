"""What ovlab tells its user besides results: the caveat every report built on the embedded default
must show, and the one channel for warnings (each once per process; ``--verbose`` for all)."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import warnings

EMBEDDED_CAVEAT = (
    "These numbers come from the embedded default: a small synthetic dataset made by "
    "ovlab.data.procedural and, where CLIP is used, an untrained CLIP. They check that the "
    "pipeline runs end to end and is reproducible; they say nothing about the methods. "
    "Switch to the `paper` profile with real data and weights to measure the methods."
)


def caveat_markdown(profile: str, *, synthetic_data: bool = True, untrained_clip: bool = False):
    """A Markdown block for a notebook: the caveat when ``profile == "embedded"``, else a note.

    Returns an ``IPython.display.Markdown`` object when IPython is present, else the string.
    """
    if profile == "embedded":
        parts = ["**Embedded default: synthetic data.**" if synthetic_data else "**Embedded default.**"]
        if untrained_clip:
            parts.append("**Untrained CLIP.**")
        text = "> ⚠️ " + " ".join(parts) + " " + EMBEDDED_CAVEAT
    else:
        text = f"> Profile `{profile}`: real data and weights as configured in params.yaml."
    try:
        from IPython.display import Markdown

        return Markdown(text)
    except ImportError:  # pragma: no cover
        return text


# --- Warnings: each once per process, in one place ------------------------------------------------


class OvlabWarning(UserWarning):
    """A warning of ovlab's own (untrained CLIP, duplicate keys, ...): shown once per process as
    ``ovlab: warning: <message>`` (no source line); every time with ``--verbose``."""


warnings.filterwarnings("once", category=OvlabWarning)

_VERBOSE = False


def warn_once(message: str, *, stacklevel: int = 2) -> None:
    """Emit ``message`` as an :class:`OvlabWarning`: the single channel for ovlab's warnings.

    Each message is shown once per process whatever the call site. Python's own ``once`` filter is
    not enough for that: its registry is cleared whenever any code changes the warning filters
    (every ``warnings.catch_warnings`` block), so a repeat after one would show again. A message
    already shown is therefore dropped here while the filter in force for it is ``once`` (or
    ``default``/``module``, ovlab's or a caller's); under ``always`` or ``error`` (``pytest.warns``,
    ``recwarn``, ``-W error``, ``--verbose`` via :func:`configure_output`) every occurrence goes
    through.
    """
    if message in _SHOWN and _action(message) in ("once", "default", "module"):
        return
    _SHOWN.add(message)
    warnings.warn(message, OvlabWarning, stacklevel=stacklevel + 1)


_SHOWN: set[str] = set()


def _action(message: str) -> str:
    """The action of the first warning filter that matches an :class:`OvlabWarning` with ``message``
    (any module), as :func:`warnings.warn` would find it; ``default`` when none does."""
    for action, msg, category, _module, _lineno in warnings.filters:
        if issubclass(OvlabWarning, category) and (msg is None or msg.match(message)):
            return action
    return warnings.defaultaction


def _format(message, category, filename, lineno, line=None, _orig=warnings.formatwarning):
    if issubclass(category, OvlabWarning) and not _VERBOSE:
        return f"ovlab: warning: {message}\n"
    return _orig(message, category, filename, lineno, line)


warnings.formatwarning = _format  # ovlab's own warnings without source lines, also in notebooks; others unchanged


def configure_output(verbose: bool = False) -> None:
    """Set up a command's console output (called once by the ``ovlab`` entry points).

    Default: ovlab's warnings once each, without source lines; the logging of ovlab and of the
    libraries it drives (open_clip, DVCLive, papermill) at WARNING, printed as
    ``<logger>: <message>``. ``verbose``: every occurrence of a warning with its source line,
    and INFO logging.
    """
    global _VERBOSE
    _VERBOSE = bool(verbose)
    warnings.formatwarning = _format
    if verbose:
        warnings.filterwarnings("always", category=OvlabWarning)
    level = logging.INFO if verbose else logging.WARNING
    root = logging.getLogger()
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root.addHandler(h)
    root.setLevel(level)


def is_verbose() -> bool:
    """Whether ``--verbose`` was given (:func:`configure_output`)."""
    return _VERBOSE


class _Drop(logging.Filter):
    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


@contextlib.contextmanager
def drop_log_messages(pattern: str, logger: str = ""):
    """Within the block, drop the records of ``logger`` (default: the root logger) whose message
    matches ``pattern`` — a library's own copy of a warning ovlab already gives once.

    A temporary ``NullHandler`` keeps ``logging.warning`` from installing a default handler on an
    unconfigured root logger.
    """
    log = logging.getLogger(logger)
    flt, null = _Drop(pattern), logging.NullHandler()
    log.addFilter(flt)
    added = not log.handlers
    if added:
        log.addHandler(null)
    try:
        yield
    finally:
        log.removeFilter(flt)
        if added:
            log.removeHandler(null)
