"""Live widget or static fallback: the one choice every widget view makes.

Under papermill (``ovlab run``, the DVC stages) there is no live front end: a widget would leave
only a "Loading widget..." placeholder in the report. Each view therefore renders either its
ipywidgets form or a static PNG + table, chosen by the notebook's ``interactive`` parameter.
"""

from __future__ import annotations


def live_mode(interactive: bool | None, base) -> bool:
    """Whether to show the live widget.

    Args:
        interactive: the notebook parameter: ``None`` = live exactly when opened by hand (``base``
            is ``None``, papermill injected nothing); ``True`` / ``False`` force it.
        base: the notebook's ``base`` parameter.
    """
    return (base is None) if interactive is None else bool(interactive)


def png_bytes(array) -> bytes:
    """(H, W, 3) uint8 array → PNG bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def show_static(png: bytes | None, frame=None, title: str | None = None) -> None:
    """Display a title, a PNG and a table (a pandas frame) as plain outputs."""
    from IPython.display import Image, Markdown, display

    if title:
        display(Markdown(f"**{title}**"))
    if png is not None:
        display(Image(data=png, format="png"))
    if frame is not None:
        display(frame)
