"""VIPSeg: the raw ``panomasks`` of every video of a split → semantic maps (124 classes, 255 void).

The panomask value v decodes as :func:`ovlab.data.vipseg.decode_panomask` (VIPSeg README,
``create_panoptic_video_labels.py``): 0 void, stuff ``v = id + 1``, thing ``v = (id + 1)·100 +
instance``; the semantic map holds the category id 0..123 (= the ``vipseg_124`` index) and 255 for
void. Output: ``<dst>/VIPSeg/VIPSeg_720P/semantic/<split>/<video>/<frame>.png``; the split's
videos come from ``<split>.txt``; ``images`` and ``panomasks`` and the split files are linked or
copied so that ``<dst>/VIPSeg`` is a root for ``ovlab.data.vipseg``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ovlab.data.files import read_image
from ovlab.data.prepare.jobs import Job, PrepareError, PrepareReport, copy_file, link_folder, require_dir, run_jobs, save_label, split_list

LAYOUT = """\
VIPSeg/VIPSeg_720P/          (or VIPSeg_720P itself)
  images/<video>/<frame>.jpg
  panomasks/<video>/<frame>.png      uint16: 0 void; stuff id+1; thing (id+1)*100+instance
  {train,val,test}.txt               video names
"""
SPLITS = ("train", "val", "test")


def panomask_semantic(values: np.ndarray) -> np.ndarray:
    """Raw panomask (H, W) → (H, W) category ids 0..123, 255 for void.

    Raises:
        ValueError: a value decodes to no VIPSeg category.
    """
    from ovlab.data.vipseg import decode_panomask

    cat, _ = decode_panomask(values)
    return np.where(cat < 0, 255, cat)


def convert_panomask(src: Path, out: Path) -> None:
    """One panomask PNG → its semantic PNG."""
    v = read_image(src)
    if v.ndim != 2:
        raise ValueError(f"expected a single-channel panomask, got shape {v.shape}")
    save_label(out, panomask_semantic(v))


def prepare_vipseg(src, dst, *, splits=None, workers=1, link="symlink", overwrite=False, progress=True) -> PrepareReport:
    """``VIPSeg_720P/panomasks`` → ``<dst>/VIPSeg/VIPSeg_720P/semantic/<split>/``.

    Raises:
        PrepareError: no ``panomasks`` folder, no split file, a listed video without masks (named).
    """
    src = Path(src)
    base = src / "VIPSeg_720P" if (src / "VIPSeg_720P").is_dir() else src
    masks = require_dir(base / "panomasks", "vipseg", LAYOUT)
    out = Path(dst) / "VIPSeg" / "VIPSeg_720P"
    rep = PrepareReport("vipseg")
    jobs = []
    for s in splits or SPLITS:
        f = next((p for p in (base / f"{s}.txt", src / f"{s}.txt") if p.is_file()), None)
        videos = split_list(f) if f else None
        if videos is None:
            if splits:
                raise PrepareError(f"vipseg: no {s}.txt in {base}\nExpected raw layout:\n{LAYOUT}")
            continue
        copy_file(f, out / f.name, rep)
        for v in videos:
            vd = masks / v
            if not vd.is_dir():
                raise PrepareError(f"vipseg: {vd}: panomasks of video {v!r} (listed in {f}) not found")
            for png in sorted(vd.glob("*.png")):
                o = out / "semantic" / s / v / png.name
                jobs.append(Job(convert_panomask, (png, o), (png,), (o,)))
        rep.outputs.append(str(out / "semantic" / s))
    if not rep.outputs:
        raise PrepareError(f"vipseg: no {{train,val,test}}.txt in {base}\nExpected raw layout:\n{LAYOUT}")
    for folder in ("images", "panomasks"):
        if (base / folder).is_dir():
            link_folder(base / folder, out / folder, link, rep)
    return run_jobs(jobs, rep, workers=workers, overwrite=overwrite, progress=progress)
