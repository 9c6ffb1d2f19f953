"""Cityscapes 19: ``*_gtFine_labelIds.png`` → ``*_gtFine_labelTrainIds.png`` (train ids 0..18, 255).

The id → trainId table is cityscapesScripts' ``cityscapesscripts.helpers.labels`` when that
package is installed (``pip install cityscapesscripts``), else the shipped ``cityscapes_19``
catalog (detectron2 ``builtin_meta.CITYSCAPES_CATEGORIES``: ``id`` = labelId, ``index`` = trainId),
which is the same table; the ids whose trainId is 255 or −1 become 255. cityscapesScripts'
``createTrainIdLabelImgs`` draws the same maps from the polygon JSONs; this reads the labelIds
PNGs of ``gtFine_trainvaltest.zip`` instead. Output: ``<dst>/cityscapes/gtFine/<split>/<city>/``;
``leftImg8bit`` is linked.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ovlab.data.files import read_image
from ovlab.data.prepare.jobs import Job, PrepareError, PrepareReport, link_folder, lut_apply, require_dir, run_jobs, save_label

LAYOUT = """\
cityscapes/
  leftImg8bit/{train,val,test}/<city>/<name>_leftImg8bit.png
  gtFine/{train,val,test}/<city>/<name>_gtFine_labelIds.png
"""
SPLITS = ("train", "val", "test")


@functools.lru_cache(maxsize=1)
def train_id_lut() -> np.ndarray:
    """labelId (0..255) → trainId (uint8, 255 for the ids not evaluated)."""
    lut = np.full(256, 255, np.uint8)
    try:
        from cityscapesscripts.helpers.labels import labels
    except ImportError:
        from ovlab.data.categories import load_categories

        for c in load_categories("cityscapes_19"):
            lut[c.id] = c.index
        return lut
    for lab in labels:
        if 0 <= lab.id < 256 and 0 <= lab.trainId < 255:
            lut[lab.id] = lab.trainId
    return lut


def convert_label_ids(src: Path, out: Path) -> None:
    """One labelIds PNG → its labelTrainIds PNG."""
    v = read_image(src)
    if v.ndim != 2:
        raise ValueError(f"expected a single-channel labelIds PNG, got shape {v.shape}")
    save_label(out, lut_apply(v, train_id_lut(), 255))


def prepare_cityscapes_19(src, dst, *, splits=None, workers=1, link="symlink", overwrite=False, progress=True) -> PrepareReport:
    """``cityscapes/gtFine`` labelIds → ``<dst>/cityscapes/gtFine/<split>/<city>/*_gtFine_labelTrainIds.png``.

    Raises:
        PrepareError: no ``gtFine`` folder, no labelIds file, a bad PNG (named).
    """
    src = Path(src)
    gt = require_dir(src / "gtFine", "cityscapes_19", LAYOUT)
    out = Path(dst) / "cityscapes"
    rep = PrepareReport("cityscapes_19")
    jobs = []
    for s in splits or SPLITS:
        d = gt / s
        if not d.is_dir():
            continue
        for f in sorted(d.rglob("*_gtFine_labelIds.png")):
            o = out / "gtFine" / s / f.relative_to(d).parent / f.name.replace("_labelIds.png", "_labelTrainIds.png")
            jobs.append(Job(convert_label_ids, (f, o), (f,), (o,)))
        rep.outputs.append(str(out / "gtFine" / s))
    if not jobs and not rep.outputs:
        raise PrepareError(f"cityscapes_19: no gtFine/<split>/ folder under {src}\nExpected raw layout:\n{LAYOUT}")
    if (src / "leftImg8bit").is_dir():
        link_folder(src / "leftImg8bit", out / "leftImg8bit", link, rep)
    return run_jobs(jobs, rep, workers=workers, overwrite=overwrite, progress=progress)
