"""Class-name normalisation as GKC does it for synonym curation (GKC §3.1)."""

from __future__ import annotations

import re


def normalize_class_name(raw: str) -> str:
    """Normalise a raw detectron2/COCO class name the way GKC's ``process_coco_cat`` does.

    Steps, in order: remove ``"-merged"``, remove ``"-other"``, replace the remaining ``"-"``
    with a space, strip. Examples: ``"wall-other-merged" -> "wall"``,
    ``"door-stuff" -> "door stuff"``, ``"wall-brick" -> "wall brick"``, ``"tv" -> "tv"``.

    Adapted from GKC ``mask2former/modeling/utils/misc.py`` (``process_coco_cat``).

    Raises:
        ValueError: the result is empty.
    """
    name = raw.replace("-merged", "").replace("-other", "").replace("-", " ").strip()
    name = re.sub(r"\s+", " ", name)
    if not name:
        raise ValueError(f"class name {raw!r} normalises to an empty string")
    return name


def split_multi_name(name: str) -> list[str]:
    """Split a multi-name class label into its names.

    Handles the comma lists of ADE-847 (``"wall, brick wall"``) and the ``"_or_"`` joins of
    VIPSeg (``"bag_or_package"``); underscores become spaces. A plain name returns ``[name]``.
    """
    parts = re.split(r",|_or_", name)
    out = [p.replace("_", " ").strip() for p in parts]
    return [p for p in out if p] or [name]
