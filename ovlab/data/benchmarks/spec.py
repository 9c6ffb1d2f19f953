"""Benchmark descriptions: where the files of each prepared layout live, and how to decode them."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ovlab.data.categories import CategoryList, load_categories
from ovlab.data.errors import DatasetNotFoundError
from ovlab.data.files import read_image
from ovlab.data.benchmarks.decoders import DECODERS


@functools.lru_cache(maxsize=None)
def _catalog(name: str) -> CategoryList:
    return load_categories(name)


@dataclass(frozen=True)
class Layout:
    """One on-disk layout of a benchmark's evaluation split.

    Attributes:
        name: short description (``"detectron2 prepared"``).
        gt_dir: ground-truth folder relative to the dataset folder.
        gt_suffix: ground-truth file ending; the part before it is the image *stem*.
        image_dir: image folder relative to the dataset folder (``""``: next to the GT).
        image_suffixes: image file endings tried in order.
        decoder: a name in :data:`~ovlab.data.benchmarks.decoders.DECODERS`.
        recursive: search ``gt_dir`` recursively (Cityscapes cities, ADE scene folders).
    """

    name: str
    gt_dir: str
    gt_suffix: str
    image_dir: str
    image_suffixes: tuple[str, ...]
    decoder: str
    recursive: bool = False


@dataclass(frozen=True)
class Record:
    """One evaluation image: its stem (what prediction files are named after), image and GT paths."""

    stem: str
    gt: Path
    image: Path | None
    layout: Layout


@dataclass(frozen=True)
class Benchmark:
    """A standard open-vocabulary benchmark split.

    Attributes:
        name: canonical ovlab name (``"ade20k_150"``).
        aliases: the split names ov-seg, SAN, CAT-Seg, Mask2Former use for it.
        catalog: category catalog name (:mod:`ovlab.data.catalog`).
        folders: dataset folder names tried under ``$DETECTRON2_DATASETS`` (``""`` = the root itself).
        layouts: tried in order; the first whose GT folder exists and has files wins.
        description: one line for ``--help`` and errors.
    """

    name: str
    aliases: tuple[str, ...]
    catalog: str
    folders: tuple[str, ...]
    layouts: tuple[Layout, ...]
    description: str = ""

    def categories(self) -> CategoryList:
        return _catalog(self.catalog)

    @property
    def ignore_label(self) -> int:
        return self.categories().ignore_label

    def layout_text(self) -> str:
        """The expected layouts, drawn for error messages."""
        lines = []
        for f in self.folders:
            base = f"$DETECTRON2_DATASETS/{f}" if f else "<root>"
            for lay in self.layouts:
                img = f"{base}/{lay.image_dir}/<stem>{lay.image_suffixes[0]}" if lay.image_dir else ""
                lines.append(f"  {base}/{lay.gt_dir}/{'**/' if lay.recursive else ''}<stem>{lay.gt_suffix}   ({lay.name}){'  + ' + img if img else ''}")
        return "\n".join(dict.fromkeys(lines))

    def locate(self, root: str | os.PathLike | None = None) -> tuple[Path, Layout]:
        """Find the dataset folder and layout under ``root`` (default ``$DETECTRON2_DATASETS``, else ``datasets``).

        ``root`` may be the ``$DETECTRON2_DATASETS`` folder, the dataset folder itself, or a flat
        folder holding the GT folder of one layout.

        Raises:
            DatasetNotFoundError: nothing matches; the message draws every accepted layout.
        """
        r = Path(root if root is not None else os.environ.get("DETECTRON2_DATASETS", "datasets")).expanduser()
        candidates = [r / f for f in self.folders if f] + [r]
        for base in candidates:
            found = [lay for lay in self.layouts
                     if (base / lay.gt_dir).is_dir() and next(self._gt_files(base / lay.gt_dir, lay), None) is not None]
            if found:  # prefer a layout whose image folder exists too
                return base, next((lay for lay in found if (base / lay.image_dir).is_dir()), found[0])
        raise DatasetNotFoundError(self.name, r, self.layout_text(),
                                   "Set $DETECTRON2_DATASETS or pass --root; the prepare scripts of Mask2Former/SAN write these layouts.")

    @staticmethod
    def _gt_files(d: Path, lay: Layout):
        pattern = f"*{lay.gt_suffix}"
        return iter(sorted(d.rglob(pattern) if lay.recursive else d.glob(pattern)))

    def records(self, root: str | os.PathLike | None = None) -> list[Record]:
        """All evaluation images found under ``root``, sorted by stem.

        Raises:
            DatasetNotFoundError: see :meth:`locate`.
        """
        base, lay = self.locate(root)
        gt_dir = base / lay.gt_dir if lay.gt_dir else base
        out = []
        for gt in self._gt_files(gt_dir, lay):
            stem = gt.name[: -len(lay.gt_suffix)]
            image = None
            img_dir = (base / lay.image_dir) if lay.image_dir else gt.parent
            if lay.recursive and lay.image_dir:
                img_dir = img_dir / gt.parent.relative_to(gt_dir)
            for suf in lay.image_suffixes:
                if (img_dir / f"{stem}{suf}").is_file():
                    image = img_dir / f"{stem}{suf}"
                    break
            out.append(Record(stem, gt, image, lay))
        return out

    def load_gt(self, record: Record) -> np.ndarray:
        """Decode one GT file → (H, W) int64 indices 0..K-1 or the ignore label.

        Raises:
            CorruptFileError: the file cannot be decoded or has the wrong shape (names the file).
        """
        from ovlab.data.errors import CorruptFileError

        raw = read_image(record.gt)
        try:
            return DECODERS[record.layout.decoder](raw, self.categories())
        except ValueError as exc:
            raise CorruptFileError(record.gt, str(exc)) from None
