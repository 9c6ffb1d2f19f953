"""Training batches of the physically guided segmenter: the image task's augmented crops
(:class:`ovlab.segmenter.data.IterationBatches`: deterministic per iteration) with the semantic label map
of each crop and its pseudo-ground-truth structure s_gt, computed on the crop after the geometric
transforms (reference spec §7.2; :func:`ovlab.physical.pseudo_gt.structure_target`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from ovlab.physical.pseudo_gt import structure_target

IGNORE = 255


@dataclass
class PhysicalBatch:
    """A batch: images (B, 3, S, S) in [0, 1], semantic (B, S, S) int64 (255 = unlabelled or padding),
    structure (B, S, S) float s_gt in [0, 1] (zeros when L^p is off), valid (B, S, S) bool (False on padding)."""

    images: torch.Tensor
    semantic: torch.Tensor
    structure: torch.Tensor
    valid: torch.Tensor
    iteration: int = 0

    def to(self, device) -> "PhysicalBatch":
        return PhysicalBatch(self.images.to(device), self.semantic.to(device), self.structure.to(device),
                             self.valid.to(device), self.iteration)


def semantic_map(masks: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(N, S, S) bool segment masks + (N,) labels + (S, S) valid → (S, S) int64 labels (255 elsewhere)."""
    sem = torch.full(valid.shape, IGNORE, dtype=torch.int64)
    for m, lab in zip(masks, labels):
        sem[m] = int(lab)
    sem[~valid] = IGNORE
    return sem


class PhysicalBatches(Dataset):
    """``dataset[it]``: the :class:`PhysicalBatch` of iteration ``it``.

    Args:
        base: the image task's :class:`ovlab.segmenter.data.IterationBatches`.
        structure: :class:`ovlab.config.physical.StructureParams` (``enabled`` false: no s_gt is computed).
        superpoint: the SuperPoint network when ``structure.source == "superpoint"``.
    """

    def __init__(self, base, structure, superpoint=None):
        self.base, self.structure, self.superpoint = base, structure, superpoint

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, it: int) -> PhysicalBatch:
        b = self.base[it]
        sems, structs = [], []
        for img, m, lab, v in zip(b.images, b.masks, b.labels, b.valid):
            sem = semantic_map(m, lab, v)
            sems.append(sem)
            if self.structure.enabled:
                s = structure_target(self.structure.source, img, sem, self.structure, superpoint=self.superpoint)
                structs.append(s * v)
            else:
                structs.append(torch.zeros(v.shape))
        return PhysicalBatch(b.images, torch.stack(sems), torch.stack(structs).float(), b.valid, it)


SEMANTIC_LAYOUT = """\
<root>/                                    e.g. $DETECTRON2_DATASETS/coco
  {split}2017/*.jpg                        images
  stuffthingmaps_detectron2/{split}2017/*.png   labels 0..170, 255 unlabelled (`ovlab data prepare coco_stuff_171`)
"""


@dataclass
class _ClassSegment:
    id: int
    category_index: int
    iscrowd: bool = False


@dataclass
class SemanticRecord:
    """One image of a semantic-label dataset (COCO-Stuff-171 as CAT-Seg trains on it, Mask2Former's
    ``stuffthingmaps_detectron2`` layout), shaped like a panoptic record for the image task's batches:
    one "segment" per class present (``id`` = class index + 1, never crowd).

    Attributes:
        image_id: running index. image_path, label_path: the files. ignore_label: the unlabelled value.
    """

    image_id: int
    image_path: object
    label_path: object
    ignore_label: int = IGNORE
    captions: list = None

    def __post_init__(self):
        self.captions = list(self.captions or [])
        self._classes = None

    def labels(self):
        """(H, W) int64 class indices (``ignore_label`` = unlabelled)."""
        from ovlab.data.files import read_label_map

        return read_label_map(self.label_path).astype("int64")

    def image(self):
        """(H, W, 3) uint8 RGB."""
        from ovlab.data.files import read_image

        return read_image(self.image_path, "RGB")

    def _present(self, lab=None):
        if self._classes is None:
            import numpy as np

            lab = self.labels() if lab is None else lab
            self._classes = [int(c) for c in np.unique(lab) if c != self.ignore_label]
        return self._classes

    @property
    def segments(self) -> list[_ClassSegment]:
        """One segment per class present, in class order."""
        return [_ClassSegment(c + 1, c) for c in self._present()]

    def masks(self):
        """(N, H, W) bool, one per class of :attr:`segments`."""
        import numpy as np

        lab = self.labels()
        return np.stack([lab == c for c in self._present(lab)]) if self._present(lab) else np.zeros((0, *lab.shape), bool)


def read_semantic_records(root, split: str = "train", *, image_dir: str | None = None, label_dir: str | None = None,
                          max_images: int | None = None) -> list[SemanticRecord]:
    """The records of a semantic-label dataset: every label PNG with its image (same stem, ``.jpg`` / ``.png``).

    Args:
        root: dataset root (``$DETECTRON2_DATASETS/coco``).
        split: ``train`` / ``val`` (folders ``{split}2017``).
        image_dir, label_dir: overrides of ``{split}2017`` and ``stuffthingmaps_detectron2/{split}2017``.

    Raises:
        DatasetNotFoundError: a folder is absent, or a label has no image (the message draws the layout).
    """
    from pathlib import Path

    from ovlab.data.errors import DatasetNotFoundError

    root = Path(root)
    images = root / (image_dir or f"{split}2017")
    labels = root / (label_dir or f"stuffthingmaps_detectron2/{split}2017")
    for folder in (images, labels):
        if not folder.is_dir():
            raise DatasetNotFoundError("coco_stuff_171", folder, SEMANTIC_LAYOUT)
    out = []
    for i, lab in enumerate(sorted(labels.glob("*.png"))):
        img = next((images / f"{lab.stem}{ext}" for ext in (".jpg", ".jpeg", ".png") if (images / f"{lab.stem}{ext}").is_file()), None)
        if img is None:
            raise DatasetNotFoundError("coco_stuff_171", images / f"{lab.stem}.jpg", SEMANTIC_LAYOUT)
        out.append(SemanticRecord(i, img, lab))
        if max_images is not None and len(out) >= max_images:
            break
    if not out:
        raise DatasetNotFoundError("coco_stuff_171", labels / "*.png", SEMANTIC_LAYOUT)
    return out
