"""GKC distillation modules: the student projections and the frozen CLIP teacher (GKC Eq. 2–3, §3.2, Tab. 6;
GKC `mask2former/kd_clip.py` and `mask2former/maskformer_model_voca_dense_kd_syn.py`).

Student: v = Linear_l(prior_l) (``prior``: the matched query's ``class_embed`` output, hidden → D,
one linear per decoder prediction, GKC ``KD.STU_SOURCE='prior'``) or Linear_l(e_l) (``post``: the
projected embedding, D → D). The learnable text scale s of the code form lives here too.

Teacher: the frozen CLIP ResNet's attention pool (``global``: the mean-token query, GKC ``attn_g``;
``spatial``: the output at every position, ``attn_l``, pooled over the mask — ``masked`` — or over
the whole grid — ``mean``, GKC's code), fed with either the augmented image times the GT mask
(``in_model_mask``, the paper) or GKC's grey-filled bbox crop of the un-augmented image stretched to
the CLIP input size (``crop``; with ``masked`` the mask is cut and stretched with it, so the pool
covers the instance's cells of the crop). Outputs are L2-normalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ovlab.clip.crops import masked_crops
from ovlab.clip.dense import mask_pool, resnet_features


def _prior_input(prior: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    return prior


def _post_input(prior: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    return embedding


_STUDENT_INPUTS = {"prior": _prior_input, "post": _post_input}
"""``gkc.kd.student`` → which query feature the student projection reads (GKC ``KD.STU_SOURCE``)."""


class DistillHead(nn.Module):
    """Student projections (one per decoder prediction) and the text scale s.

    Args:
        student: ``prior`` | ``post``.
        hidden_dim: decoder width (input of ``prior``).
        embed_dim: CLIP joint dimension D.
        num_predictions: L.
        text_scale_init: s at initialisation [1.0].
        learn_text_scale: s is trained (GKC code) [false: the paper has no s].

    Raises:
        ValueError: unknown ``student``.
    """

    def __init__(self, student: str, hidden_dim: int, embed_dim: int, num_predictions: int, *,
                 text_scale_init: float = 1.0, learn_text_scale: bool = False):
        super().__init__()
        if student not in _STUDENT_INPUTS:
            raise ValueError(f"student must be 'prior' or 'post', got {student!r}")
        self.student = student
        self._input = _STUDENT_INPUTS[student]
        width = hidden_dim if student == "prior" else embed_dim
        self.proj = nn.ModuleList([nn.Linear(width, embed_dim) for _ in range(num_predictions)])
        self.text_scale = nn.Parameter(torch.tensor(float(text_scale_init)), requires_grad=learn_text_scale)

    def forward(self, layer: int, prior: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Student embeddings of prediction ``layer``: (..., hidden) prior or (..., D) embedding → (..., D), normalised."""
        return F.normalize(self.proj[layer](self._input(prior, embedding)), dim=-1)


class ClipTeacher:
    """Frozen CLIP ResNet teacher features r_i of GT instances (GKC Eq. 2, Tab. 6; GKC `mask2former/kd_clip.py`).

    Args:
        clip: :class:`ovlab.clip.ClipModel` with a ModifiedResNet visual tower.
        kind: ``global`` | ``spatial``.
        pool: ``masked`` | ``mean`` (``spatial`` only).
        source: ``in_model_mask`` | ``crop``.
        eval_mode: BatchNorm in eval mode (kit default); ``False`` reproduces GKC's train-mode quirk.

    Raises:
        TypeError: the CLIP is not a ResNet.
    """

    def __init__(self, clip, kind: str = "spatial", pool: str = "masked", source: str = "in_model_mask",
                 eval_mode: bool = True):
        from open_clip.modified_resnet import ModifiedResNet

        if not isinstance(clip.model.visual, ModifiedResNet):
            raise TypeError(f"the GKC teacher needs a CLIP ResNet, got {type(clip.model.visual).__name__} "
                            f"({clip.name}); set tgkd.gkc.kd.mode: none or use an RN CLIP")
        if kind not in ("global", "spatial") or pool not in ("masked", "mean") or source not in _TEACHER_INPUTS:
            raise ValueError(f"teacher kind/pool/source must be global|spatial, masked|mean, in_model_mask|crop; "
                             f"got {kind!r}, {pool!r}, {source!r}")
        self.clip, self.kind, self.pool, self.source, self.eval_mode = clip, kind, pool, source, eval_mode
        self._pool = _global_token if kind == "global" else _TEACHER_POOLS[pool]
        self._input = _TEACHER_INPUTS[source]

    @torch.no_grad()
    def _features(self, x: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        visual = self.clip.model.visual
        visual.train(not self.eval_mode)
        f = resnet_features(visual, x)
        return F.normalize(self._pool(f, masks).float(), dim=-1)

    def __call__(self, batch, instances: list[torch.Tensor], chunk: int = 64) -> torch.Tensor:
        """Teacher embeddings of the chosen GT instances.

        Args:
            batch: :class:`ovlab.segmenter.data.Batch` (``images`` (B, 3, S, S) in [0, 1], ``masks``,
                ``sources`` for ``crop``).
            instances: B tensors of GT indices (the instances kept for KD, in order).
            chunk: instances per teacher forward.

        Returns:
            (N, D) float32 unit rows, N = Σ len(instances[b]), in image-then-instance order.
        """
        device = batch.images.device
        inputs, masks = [], []
        for b, idx in enumerate(instances):
            if idx.numel() == 0:
                continue
            x, m = self._input(self.clip, batch, b, idx, device)
            inputs.append(x)
            if m is not None:
                masks.append(m)
        if not inputs:
            dim = self.clip.model.visual.output_dim
            return torch.zeros(0, dim, device=device)
        x = torch.cat(inputs)
        m = torch.cat(masks) if masks else None
        outs = [self._features(x[i:i + chunk], None if m is None else m[i:i + chunk]) for i in range(0, len(x), chunk)]
        return torch.cat(outs)


# ------------------------------------------------------------------------------- teacher variants
def _global_token(f, masks):
    """``global``: the attention-pool global token (GKC ``attn_g``)."""
    return f.global_token


def _mean_pool(f, masks):
    """``spatial`` + ``mean``: the spatial tokens averaged over the whole grid (GKC ``attn_l``; GKC
    `mask2former/maskformer_model_voca_dense_kd_syn.py` L603–606)."""
    return f.spatial_tokens.mean(dim=(-1, -2))


def _masked_pool(f, masks):
    """``spatial`` + ``masked``: the spatial tokens pooled over the mask (GKC §4.5, Tab. 6 "mask-based pooling"),
    the instance mask in the teacher input's frame (the image's, or the crop's for ``crop``: :func:`crop_masks`);
    an empty mask: the whole grid."""
    if masks is None:
        raise ValueError("masked spatial pooling needs the instance masks of the teacher inputs")
    pooled, valid = mask_pool(f.spatial_tokens, masks[:, None].float())
    return torch.where(valid, pooled[:, 0], f.spatial_tokens.mean(dim=(-1, -2)))  # empty mask: whole grid


_TEACHER_POOLS = {"mean": _mean_pool, "masked": _masked_pool}


def _in_model_mask_input(clip, batch, b: int, idx: torch.Tensor, device):
    """``in_model_mask``: the augmented image times each GT mask (GKC §3.2, Eq. 2's R(I, M_i)); the masks."""
    m = batch.masks[b][idx.to(device)].float()
    return clip.normalize(batch.images[b:b + 1]) * m[:, None], m


def crop_masks(masks: torch.Tensor, boxes: torch.Tensor, size) -> torch.Tensor:
    """The instance masks in the frame of their bbox crops: each mask cut to its box and stretched to
    ``size`` like the crop (nearest), so that masked pooling of a crop's tokens covers the instance.

    Args:
        masks: (M, H, W) bool, the masks the crops were made from.
        boxes: (M, 4) int64 ``x0, y0, x1, y1`` (exclusive ends), as :func:`ovlab.clip.crops.masked_crops` returns.
        size: the crops' side, int or (h, w).

    Returns:
        (M, h, w) bool.
    """
    out_size = (size, size) if isinstance(size, int) else tuple(size)
    out = [F.interpolate(masks[k, y0:y1, x0:x1][None, None].float(), size=out_size, mode="nearest")[0, 0] > 0.5
           for k, (x0, y0, x1, y1) in enumerate(boxes.tolist())]
    return torch.stack(out) if out else torch.zeros(0, *out_size, dtype=torch.bool)


def _crop_input(clip, batch, b: int, idx: torch.Tensor, device):
    """``crop``: GKC's grey-filled bbox crops of the un-augmented image, stretched to the CLIP input size
    (GKC `detr_panoptic_caption_syn_kd_dataset_mapper.py` L299–331), and the masks in the crops' frame
    (:func:`crop_masks`; GKC pools the whole grid, ``spatial_pool: mean``, so it never needs them)."""
    src = batch.sources[b]
    sm = src.masks[idx.cpu()]
    crops, boxes = masked_crops(src.image * 255.0, sm, size=clip.image_size, fill="grey", resize="stretch",
                                mean=clip.mean, std=clip.std, exclusive_max_quirk=True)
    return crops.to(device), crop_masks(torch.as_tensor(sm).bool().to(crops.device), boxes, clip.image_size).to(device)


_TEACHER_INPUTS = {"in_model_mask": _in_model_mask_input, "crop": _crop_input}
