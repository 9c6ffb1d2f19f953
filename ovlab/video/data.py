"""Training batches of VIPSeg clips, deterministic per iteration (GKC §4.4).

Item ``it`` of :class:`IterationClips` is this process's :class:`ClipBatch` of iteration ``it``, a
pure function of (seed, it), as :class:`ovlab.segmenter.data.IterationBatches` is for images:

- slot ``s`` of the global batch B reads video ``perm_e[p mod n]`` (p = it·B + s, ``perm_e`` the
  seeded permutation of the n training videos for epoch e = p div n);
- its clip is drawn as Video Mask2Former's mapper does (:func:`ovlab.data.video_clips.sample_clip`:
  a reference frame, the other T − 1 frames within ``train_sampling_range`` of it) with the
  generator ``default_rng([seed, it, s])``;
- every frame of the clip gets the **same** augmentation (VMF applies one transform per clip): the
  GKC image augmentation (:func:`ovlab.segmenter.augment.augment`) is replayed on each frame with a
  generator in the same state, ``default_rng([seed, it, s, 1])``, so flip, scale and crop agree.

Targets are the split's (``train_base_ignore``: novel segments dropped, their pixels ignored): one
space-time mask (N, T, S, S) per segment id of the clip (video-consistent instance identity), all
False in frames where the instance is absent or cropped out (kept, as GKC keeps empty masks).
Under DDP, rank r of W takes slots r, r + W, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset

from ovlab.data.video_clips import sample_clip
from ovlab.data.vipseg_splits import ClipSample, VipsegClips, VipsegSplit

from ovlab.segmenter.augment import augment
from ovlab.segmenter.data import Batch, Example


@dataclass
class ClipBatch:
    """A batch of b clips of T frames for one process.

    Attributes:
        images: (b, T, 3, S, S) float32 RGB in [0, 1] (augmented).
        labels: b tensors (N_i,) int64 training-vocabulary indices (the split's index).
        masks: b tensors (N_i, T, S, S) bool space-time masks, same order as ``labels``.
        valid: (b, T, S, S) bool, False on padding.
        videos: b video names; frame_names: b tuples of T frame stems.
        segment_ids: b tensors (N_i,) int64 VIPSeg segment ids (instance identity).
        sources: b un-augmented :class:`ovlab.data.vipseg_splits.ClipSample` (KD ``crop`` teacher input).
        iteration: the iteration; slots: the global batch slot of each clip.
    """

    images: torch.Tensor
    labels: list[torch.Tensor]
    masks: list[torch.Tensor]
    valid: torch.Tensor
    videos: list[str]
    frame_names: list[tuple[str, ...]]
    segment_ids: list[torch.Tensor]
    sources: list[ClipSample] = field(default_factory=list)
    iteration: int = 0
    slots: list[int] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        """T."""
        return int(self.images.shape[1])

    def to(self, device) -> "ClipBatch":
        return ClipBatch(self.images.to(device), [x.to(device) for x in self.labels],
                         [m.to(device) for m in self.masks], self.valid.to(device), self.videos, self.frame_names,
                         self.segment_ids, self.sources, self.iteration, self.slots)

    def stacked_masks(self) -> list[torch.Tensor]:
        """b tensors (N_i, T·S, S): the masks with the frames stacked along the height
        (:meth:`ovlab.video.model.VideoPrediction.stacked`)."""
        return [m.reshape(m.shape[0], m.shape[1] * m.shape[2], m.shape[3]) for m in self.masks]

    def present(self) -> list[torch.Tensor]:
        """b tensors (N_i, T) bool: instance i is visible in frame t of the (augmented) clip."""
        return [m.flatten(2).any(-1) for m in self.masks]

    def frames(self) -> Batch:
        """The clips as an image :class:`ovlab.segmenter.data.Batch` of b·T frames, clip-major
        (frame f = clip f // T, frame f % T): images (b·T, 3, S, S), per frame all N_i masks of
        its clip (N_i, S, S) and labels, and the un-augmented frame with its masks as the frame's
        ``sources`` (for the KD teacher: GKC does not say how TD and TGKD carry over to clips; we apply them per
        frame-instance)."""
        T = self.num_frames
        masks, labels, ids, sources = [], [], [], []
        for b in range(len(self.labels)):
            src = self.sources[b] if self.sources else None
            for t in range(T):
                masks.append(self.masks[b][:, t])
                labels.append(self.labels[b])
                ids.append(b * T + t)
                if src is not None:
                    img = torch.from_numpy(np.ascontiguousarray(src.images[t])).permute(2, 0, 1).float() / 255.0
                    sources.append(Example(img, torch.from_numpy(src.masks[:, t]), self.labels[b].cpu(), b * T + t))
        return Batch(self.images.flatten(0, 1), labels, masks, ids, [[] for _ in ids], self.valid.flatten(0, 1),
                     sources, self.iteration, [s * T + t for s in self.slots for t in range(T)])


class IterationClips(Dataset):
    """``dataset[it]`` = this process's :class:`ClipBatch` of iteration ``it`` (``batch_size=None`` loaders).

    Args:
        split: the training :class:`ovlab.data.vipseg_splits.VipsegSplit` (its index = the labels).
        batch_size: global batch size B (clips, all processes).
        seed: base seed.
        clip_length: T; sampling_range: VMF ``SAMPLING_FRAME_RANGE``.
        augment_params: :class:`ovlab.config.train.AugmentParams` (same transform for every frame).
        rank, world_size: DDP position.
        iterations: the dataset length the trainer iterates.

    Raises:
        ValueError: the split has no video.
    """

    def __init__(self, split: VipsegSplit, batch_size: int, seed: int, clip_length: int, sampling_range: int,
                 augment_params, rank: int = 0, world_size: int = 1, iterations: int | None = None):
        if not split.videos:
            raise ValueError(f"VIPSeg split {split.name!r} has no video to train on")
        self.split, self.batch_size, self.seed = split, batch_size, seed
        self.clip_length, self.sampling_range = clip_length, sampling_range
        self.aug, self.rank, self.world_size, self.iterations = augment_params, rank, world_size, iterations

    def __len__(self) -> int:
        return self.iterations or 0

    @lru_cache(maxsize=4)
    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.split.videos))

    def global_videos(self, it: int) -> list[int]:
        """Video indices of the whole batch of iteration ``it`` (all processes)."""
        n = len(self.split.videos)
        return [int(self._perm(p // n)[p % n]) for p in range(it * self.batch_size, (it + 1) * self.batch_size)]

    def sample(self, it: int, slot: int) -> ClipSample:
        """The un-augmented clip of a slot (:class:`ovlab.data.vipseg_splits.ClipSample`)."""
        vi = self.global_videos(it)[slot]
        rng = np.random.default_rng([self.seed, it, slot])
        window = sample_clip(len(self.split.videos[vi]), self.clip_length, self.sampling_range, rng)
        return VipsegClips(self.split, [(vi, window)])[0]

    def __getitem__(self, it: int) -> ClipBatch:
        a = self.aug
        images, labels, masks, valid, videos, frames, seg_ids, sources = [], [], [], [], [], [], [], []
        slots = list(range(self.rank, self.batch_size, self.world_size))
        for slot in slots:
            s = self.sample(it, slot)
            fi, fm, fv = [], [], []
            for t in range(len(s.frame_names)):
                img = torch.from_numpy(np.ascontiguousarray(s.images[t])).permute(2, 0, 1).float() / 255.0
                x, m, v = augment(img, torch.from_numpy(s.masks[:, t]), np.random.default_rng([self.seed, it, slot, 1]),
                                  flip=a.flip, scale_min=a.scale_min, scale_max=a.scale_max, crop_size=a.crop_size,
                                  pad_value=a.pad_value)
                fi.append(x)
                fm.append(m)
                fv.append(v)
            images.append(torch.stack(fi))
            masks.append(torch.stack(fm, 1))
            valid.append(torch.stack(fv))
            labels.append(torch.from_numpy(s.classes))
            videos.append(s.video)
            frames.append(s.frame_names)
            seg_ids.append(torch.from_numpy(s.segment_ids))
            sources.append(s)
        return ClipBatch(torch.stack(images), labels, masks, torch.stack(valid), videos, frames, seg_ids, sources, it,
                         slots)
