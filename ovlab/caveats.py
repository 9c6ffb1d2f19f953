"""The caveat every report built on the embedded default must show."""

from __future__ import annotations

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
