"""The GKC video model: the image segmenter extended as Video Mask2Former does (GKC §3.4, §4.4).

A clip of T frames (B, T, 3, H, W) is segmented as one T×H×W space-time volume (GKC §3.4; Video
Mask2Former, Cheng et al. 2021):

- the backbone and the pixel decoder run on every frame independently (B·T images);
- the Mask2Former decoder's Q queries attend to the **space-time memory**: at each of the three
  feature levels, the T frames' h×w maps are flattened together into T·h·w tokens; every key gets
  the frame's 2-D sine position embedding plus a temporal one (:func:`temporal_position_embedding`);
  the masked attention of layer l restricts a query to the space-time region its previous mask
  prediction covers (an all-empty mask lets the query see everything, as in Mask2Former);
- each query predicts a **tube**: per-frame dot products of its mask embedding with that frame's
  1/4 mask features, (B, Q, T, H/4, W/4); and **one class embedding per query per clip** (the
  instance's identity is the query), classified against any text as the image model does.

How the transformers modules are reused (nothing is copied): the T frames' maps of a level are
stacked along the height, (B, C, T·h, w), which is exactly the T·h·w token order; transformers'
``Mask2FormerMaskedAttentionDecoder`` is called unchanged on that memory with feature sizes
(T·h, w). Its mask predictor then computes the per-frame dot products stacked along the height,
and the bilinear resize of the mask logits to each level's (T·h, w) never mixes two frames (the
scale factors 2, 4, 8 are integers, so every output row interpolates rows of one frame). Only the
transformer module's input preparation (projections, level and position embeddings, flattening)
is re-done here (:func:`space_time_decode`), because its own would give the stacked map a single
2-D position embedding.

Parameters: **the same modules and names as** :class:`ovlab.segmenter.model.Segmenter`
(``backbone.*``, ``head.*``, ``classifier.*``); the temporal embedding is a fixed sine embedding with
no parameter, so :data:`NEW_KEYS` is empty and an image checkpoint initialises the whole video
model (:meth:`VideoSegmenter.load_image_weights`), as Video Mask2Former starts from COCO Mask2Former.
With T = 1 the temporal embedding is exactly zero and the video model computes exactly what the
image model computes on the frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ovlab.segmenter.inference import names_to_classes
from ovlab.segmenter.mask2former import DecoderOutput, Mask2FormerHead
from ovlab.segmenter.model import Prediction, Segmenter, build_segmenter

#: State-dict keys a video model has and an image checkpoint lacks (none: the temporal embedding
#: is a fixed function, every parameter is shared with the image model).
NEW_KEYS: tuple[str, ...] = ()


@dataclass
class VideoPrediction(Prediction):
    """One decoder prediction for a batch of B clips of T frames.

    Attributes:
        prior: (B, Q, hidden) ``class_embed`` output, one per query per clip.
        embedding: (B, Q, D) projected query embedding (not normalised).
        masks: (B, Q, T, H/4, W/4) mask logits (a tube per query).
        logits: (B, Q, M + 1) τ·cos logits over the M names plus void, or ``None``.
    """

    @property
    def num_frames(self) -> int:
        return int(self.masks.shape[2])

    def stacked(self) -> Prediction:
        """The same prediction with the frames stacked along the height: masks (B, Q, T·H/4, W/4).

        This is how the image :class:`ovlab.segmenter.criterion.SetCriterion` sees a clip (its
        matcher and point sampler then run over the whole space-time tube)."""
        b, q, t, h, w = self.masks.shape
        return Prediction(self.prior, self.embedding, self.masks.reshape(b, q, t * h, w), self.logits)

    def frame(self, t: int) -> Prediction:
        """Frame ``t``'s masks (B, Q, H/4, W/4) with the clip's embeddings and logits."""
        return Prediction(self.prior, self.embedding, self.masks[:, :, t], self.logits)


def temporal_position_embedding(num_frames: int, dim: int, *, temperature: float = 10000.0,
                                device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed temporal embedding of the frames of a clip, zero for a single frame.

    Frame t of T gets the normalised offset from the clip centre z_t = 2π·(t − (T − 1)/2)/T ∈ (−π, π)
    (normalised by T like Video Mask2Former's ``PositionEmbeddingSine3D``, so a model trained on
    2-frame clips sees the same range on a whole video), and channel pair (2i, 2i + 1) holds
    (sin(z_t/ω_i), 1 − cos(z_t/ω_i)) with ω_i = temperature^(2i/dim). Unlike VMF's embedding
    (sin, cos), the cosine half is shifted so that z = 0 maps to the zero vector: a one-frame clip
    has no temporal term and the video model reduces exactly to the image model.

    Args:
        num_frames: T ≥ 1.
        dim: embedding width (the decoder's hidden size), even.

    Returns:
        (T, dim) tensor.

    Raises:
        ValueError: T < 1 or an odd ``dim``.
    """
    if num_frames < 1 or dim % 2:
        raise ValueError(f"need num_frames ≥ 1 and an even dim, got {num_frames} and {dim}")
    t = torch.arange(num_frames, device=device, dtype=torch.float64)
    z = 2 * math.pi * (t - (num_frames - 1) / 2) / num_frames
    omega = temperature ** (2 * torch.arange(dim // 2, device=device, dtype=torch.float64) / dim)
    a = z[:, None] / omega[None]
    out = torch.stack([a.sin(), 1 - a.cos()], dim=-1).flatten(1)
    return out.to(dtype)


def _frames_to_stack(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B·T, C, h, w) frame-major maps → (B, C, T·h, w), frames stacked along the height."""
    bt, c, h, w = x.shape
    return x.view(bt // num_frames, num_frames, c, h, w).transpose(1, 2).reshape(bt // num_frames, c, num_frames * h, w)


def space_time_decode(head: Mask2FormerHead, features: list[torch.Tensor], num_frames: int) -> DecoderOutput:
    """Pixel decoder per frame, then the masked-attention decoder over the space-time memory.

    Re-does ``Mask2FormerTransformerModule.forward``'s input preparation (the same modules: input
    projections, level embedding, 2-D sine positions, learnable query features and positions) for
    a clip, then calls its ``decoder`` unchanged on the frames stacked along the height (module
    docstring).

    Args:
        head: the image model's :class:`Mask2FormerHead`.
        features: the backbone's 4 maps of the B·T frames, (B·T, C_i, H/s_i, W/s_i), clip-major
            (frames of clip 0 first).
        num_frames: T.

    Returns:
        :class:`DecoderOutput` with queries L × (B, Q, hidden) and masks L × (B, Q, T, H/4, W/4).
    """
    tm = head.transformer
    pix = head.pixel_decoder(features, output_hidden_states=False, return_dict=True)
    levels = list(pix.multi_scale_features)
    bt = levels[0].shape[0]
    if bt % num_frames:
        raise ValueError(f"{bt} frames is not a multiple of the clip length {num_frames}")
    b = bt // num_frames
    memory, positions, sizes = [], [], []
    for i in range(tm.num_feature_levels):
        x = levels[i]
        h, w = x.shape[-2:]
        sizes.append(torch.Size((num_frames * h, w)))
        pos = tm.position_embedder(x.shape, x.device, x.dtype, None)  # (B·T, C, h, w): the frame's 2-D sine
        if num_frames > 1:
            temporal = temporal_position_embedding(num_frames, pos.shape[1], device=x.device, dtype=x.dtype)
            pos = pos + temporal.repeat(b, 1)[:, :, None, None]
        positions.append(_frames_to_stack(pos, num_frames).flatten(2).permute(2, 0, 1))
        proj = _frames_to_stack(tm.input_projections[i](x), num_frames)
        memory.append((proj.flatten(2) + tm.level_embed.weight[i][None, :, None]).permute(2, 0, 1))
    query_pos = tm.queries_embedder.weight.unsqueeze(1).repeat(1, b, 1)
    query_feat = tm.queries_features.weight.unsqueeze(1).repeat(1, b, 1)
    dec = tm.decoder(inputs_embeds=query_feat, multi_stage_positional_embeddings=positions,
                     pixel_embeddings=_frames_to_stack(pix.mask_features, num_frames), encoder_hidden_states=memory,
                     query_position_embeddings=query_pos, feature_size_list=sizes, output_hidden_states=False,
                     output_attentions=False, return_dict=True)
    masks = []
    for m in dec.masks_queries_logits:
        bb, q, th, w = m.shape
        masks.append(m.view(bb, q, num_frames, th // num_frames, w))
    return DecoderOutput(queries=[q.transpose(0, 1) for q in dec.intermediate_hidden_states], masks=masks)


class VideoSegmenter(Segmenter):
    """The image :class:`Segmenter` run on clips (module docstring; GKC §3.4).

    Same constructor and modules as :class:`Segmenter`; build one with :func:`build_video_segmenter`
    or :meth:`from_image`.

    ``forward(clips (B, T, 3, H, W), text)`` → L :class:`VideoPrediction`. A 4-D input (B, 3, H, W)
    is a batch of one-frame clips and returns image :class:`Prediction` objects (masks (B, Q, H/4,
    W/4)), exactly the image model's, so image evaluation code accepts the video model.
    """

    @classmethod
    def from_image(cls, model: Segmenter) -> "VideoSegmenter":
        """A video model sharing (not copying) the modules of an image segmenter."""
        return cls(model.backbone, model.head, model.classifier, model.pixel_mean.flatten().tolist(),
                   model.pixel_std.flatten().tolist())

    def forward(self, clips: torch.Tensor, text: torch.Tensor | None = None) -> list[Prediction]:
        """Run the model on clips.

        Args:
            clips: (B, T, 3, H, W) RGB in [0, 1] (or (B, 3, H, W) = one-frame clips); H, W multiples of 32.
            text: (M, D) name embeddings; when given every prediction carries logits.

        Returns:
            L predictions (decoder layers + 1), the last final: :class:`VideoPrediction` for 5-D input,
            :class:`Prediction` for 4-D input.

        Raises:
            ValueError: wrong rank, or H / W not a multiple of 32.
        """
        if clips.dim() == 4:
            return [p.frame(0) for p in self(clips[:, None], text)]
        if clips.dim() != 5:
            raise ValueError(f"clips must be (B, T, 3, H, W), got shape {tuple(clips.shape)}")
        if clips.shape[-1] % 32 or clips.shape[-2] % 32:
            raise ValueError(f"frame size {tuple(clips.shape[-2:])} must be a multiple of 32 (pad first)")
        b, t = clips.shape[:2]
        x = (clips.flatten(0, 1) - self.pixel_mean) / self.pixel_std
        out = space_time_decode(self.head, self.backbone(x), t)
        priors, embeddings = self.classifier.embed(out.queries)
        return [VideoPrediction(p, e, m, self.classifier.logits(e, text) if text is not None else None)
                for p, e, m in zip(priors, embeddings, out.masks)]

    @torch.no_grad()
    def segment(self, clips: torch.Tensor, text: torch.Tensor, class_index: torch.Tensor,
                num_classes: int, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Per-frame semantic scores of clips for any vocabulary (Mask2Former semantic inference per frame).

        seg_{t,c}(x) = Σ_q softmax(z_q)_c · σ(m_{q,t}(x)), void dropped after the softmax.

        Args:
            clips: (B, T, 3, H, W) in [0, 1], multiples of 32 (4-D input: see :class:`Segmenter.segment`).
            text: (M, D) name embeddings; class_index: (M,) class of each name (max over names).
            num_classes: K.
            size: output (H', W'); default the input size.

        Returns:
            (B, T, K, H', W') float32 scores ((B, K, H', W') for 4-D input).
        """
        if clips.dim() == 4:
            return self.segment(clips[:, None], text, class_index, num_classes, size)[:, 0]
        final = self(clips, text)[-1]
        logits = names_to_classes(final.logits, class_index, num_classes)
        b, q, t, h, w = final.masks.shape
        size = size or tuple(clips.shape[-2:])
        masks = nn.functional.interpolate(final.masks.reshape(b, q * t, h, w), size=size, mode="bilinear",
                                          align_corners=False).view(b, q, t, *size)
        p = logits.float().softmax(-1)[..., :-1]
        return torch.einsum("bqk,bqthw->btkhw", p, masks.float().sigmoid())

    def load_image_weights(self, state: Mapping[str, torch.Tensor]) -> "torch.nn.modules.module._IncompatibleKeys":
        """Initialise from an image segmenter's state dict (``load_state_dict(state, strict=False)``).

        Returns:
            torch's ``(missing_keys, unexpected_keys)``; ``missing_keys`` ⊆ :data:`NEW_KEYS`.

        Raises:
            ValueError: a key of the video model other than :data:`NEW_KEYS` is missing (the
                checkpoint is not of the same architecture; lists up to 5 keys).
            RuntimeError: a tensor's shape differs (torch's message names it).
        """
        res = self.load_state_dict(dict(state), strict=False)
        bad = [k for k in res.missing_keys if k not in NEW_KEYS]
        if bad:
            raise ValueError(f"the image checkpoint lacks {len(bad)} weights of the video model, e.g. {bad[:5]} "
                             "(built with other model parameters?)")
        return res


def build_video_segmenter(params, embed_dim: int, clip=None) -> VideoSegmenter:
    """A :class:`VideoSegmenter` from :class:`ovlab.config.segmenter.ModelParams` (seed torch first):
    the image model :func:`ovlab.segmenter.model.build_segmenter` builds, run on clips."""
    return VideoSegmenter.from_image(build_segmenter(params, embed_dim, clip))
