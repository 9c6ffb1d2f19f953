"""Training batches: COCO-panoptic records → augmented tensors, deterministic per iteration.

The sample order is a fixed function of (seed, iteration): global position p = it·B + slot reads
image ``perm_e[p mod n]`` with ``perm_e`` the seeded permutation of epoch e = p div n, and the
augmentation of that slot draws from ``default_rng([seed, it, slot])``. Resuming at iteration i
therefore sees exactly the batches an uninterrupted run sees, whatever the data-loader workers.
Under DDP, rank r of W takes slots r, r + W, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset

from ovlab.segmenter.augment import augment

#: Decoded examples are kept in memory when the dataset has at most this many images.
CACHE_LIMIT = 512


@dataclass
class Example:
    """One decoded training image.

    Attributes:
        image: (3, H, W) float32 RGB in [0, 1].
        masks: (N, H, W) bool, one per non-crowd segment whose class is in the vocabulary.
        labels: (N,) int64 vocabulary indices.
        image_id: dataset image id.
        captions: the image's captions (grounding loss).
        segment_ids: (N,) int64 panoptic segment ids (synonym-score lookup, GKC Eq. 1).
    """

    image: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor
    image_id: int
    captions: list[str] = field(default_factory=list)
    segment_ids: torch.Tensor | None = None


@dataclass
class Batch:
    """A batch for one process: images (b, 3, S, S), b lists of labels (N_i,) and masks (N_i, S, S).

    ``sources`` are the un-augmented :class:`Example` of each image (same segment order as ``labels``:
    the GKC teacher's ``crop`` input, GKC ``detr_panoptic_caption_syn_kd_dataset_mapper.py``); ``iteration`` and
    ``slots`` identify the draw.
    """

    images: torch.Tensor
    labels: list[torch.Tensor]
    masks: list[torch.Tensor]
    image_ids: list[int]
    captions: list[list[str]]
    valid: torch.Tensor
    sources: list[Example] = field(default_factory=list)
    iteration: int = 0
    slots: list[int] = field(default_factory=list)

    def to(self, device) -> "Batch":
        return Batch(self.images.to(device), [x.to(device) for x in self.labels], [m.to(device) for m in self.masks],
                     self.image_ids, self.captions, self.valid.to(device), self.sources, self.iteration, self.slots)


def load_example(record, lut: torch.Tensor) -> Example:
    """Decode a :class:`ovlab.data.coco_panoptic.PanopticRecord`; drop crowd and out-of-vocabulary segments.

    Args:
        lut: (K_dataset,) dataset index → vocabulary index (−1 = not in the vocabulary).
    """
    image = torch.from_numpy(np.ascontiguousarray(record.image())).permute(2, 0, 1).float() / 255.0
    masks = torch.from_numpy(record.masks())
    keep, labels, ids = [], [], []
    for k, seg in enumerate(record.segments):
        v = int(lut[seg.category_index])
        if not seg.iscrowd and v >= 0:
            keep.append(k)
            labels.append(v)
            ids.append(int(seg.id))
    return Example(image, masks[keep] if keep else masks[:0], torch.tensor(labels, dtype=torch.int64),
                   record.image_id, list(record.captions), torch.tensor(ids, dtype=torch.int64))


class IterationBatches(Dataset):
    """``dataset[it]`` = this process's :class:`Batch` of iteration ``it`` (use with ``batch_size=None``).

    Args:
        records: the training records.
        lut: dataset index → vocabulary index.
        batch_size: global batch size B (all processes).
        seed: base seed.
        augment_params: :class:`ovlab.config.train.AugmentParams`.
        rank, world_size: DDP position.

    Raises:
        ValueError: no records.
    """

    def __init__(self, records, lut: torch.Tensor, batch_size: int, seed: int, augment_params,
                 rank: int = 0, world_size: int = 1, iterations: int | None = None):
        if not records:
            raise ValueError("no training images")
        self.records, self.lut, self.batch_size, self.seed = list(records), lut, batch_size, seed
        self.aug, self.rank, self.world_size = augment_params, rank, world_size
        self.iterations = iterations
        self._cache: dict[int, Example] = {}

    def __len__(self) -> int:
        return self.iterations or 0

    @lru_cache(maxsize=4)
    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.records))

    def global_indices(self, it: int) -> list[int]:
        """Image indices of the whole batch of iteration ``it`` (all processes)."""
        n = len(self.records)
        out = []
        for slot in range(self.batch_size):
            p = it * self.batch_size + slot
            out.append(int(self._perm(p // n)[p % n]))
        return out

    def example(self, i: int) -> Example:
        if i in self._cache:
            return self._cache[i]
        ex = load_example(self.records[i], self.lut)
        if len(self.records) <= CACHE_LIMIT:
            self._cache[i] = ex
        return ex

    def __getitem__(self, it: int) -> Batch:
        idx = self.global_indices(it)
        images, labels, masks, ids, caps, valid, sources = [], [], [], [], [], [], []
        a = self.aug
        slots = list(range(self.rank, self.batch_size, self.world_size))
        for slot in slots:
            ex = self.example(idx[slot])
            rng = np.random.default_rng([self.seed, it, slot])
            img, m, v = augment(ex.image, ex.masks, rng, flip=a.flip, scale_min=a.scale_min, scale_max=a.scale_max,
                                crop_size=a.crop_size, pad_value=a.pad_value)
            images.append(img)
            labels.append(ex.labels)
            masks.append(m)
            ids.append(ex.image_id)
            caps.append(ex.captions)
            valid.append(v)
            sources.append(ex)
        return Batch(torch.stack(images), labels, masks, ids, caps, torch.stack(valid), sources, it, slots)
