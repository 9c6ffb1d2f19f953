"""The GKC segment-then-classify segmenter (GKC §3, Fig. 2; GKC
``mask2former/maskformer_model_voca_dense_kd_syn.py``).

Backbone (CLIP ResNet trunk or ImageNet ResNet) → Mask2Former pixel decoder and masked-attention
decoder (:mod:`.mask2former`) → per-prediction query embeddings in the CLIP text space and mask
logits. Classification is against text embeddings passed at call time, so any vocabulary works at
test time without retraining; no CLIP image encoder runs at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ovlab.segmenter.backbone import ClipResNetTrunk, SmallConvTrunk, TorchvisionResNetTrunk
from ovlab.segmenter.classifier import TextClassifier
from ovlab.segmenter.inference import names_to_classes, semantic_inference, upsample_masks
from ovlab.segmenter.mask2former import Mask2FormerHead, mask2former_config


@dataclass
class Prediction:
    """One decoder prediction for a batch (B images, Q queries, D = CLIP dim).

    Attributes:
        prior: (B, Q, hidden) ``class_embed`` output (the KD student "prior", GKC Tab. 6).
        embedding: (B, Q, D) projected query embedding (not normalised; the student "post").
        masks: (B, Q, H/4, W/4) mask logits.
        logits: (B, Q, M + 1) τ·cos logits over the M names of the text passed plus void, or ``None``.
    """

    prior: torch.Tensor
    embedding: torch.Tensor
    masks: torch.Tensor
    logits: torch.Tensor | None = None


class Segmenter(nn.Module):
    """Backbone + Mask2Former head + text classifier.

    Args:
        backbone: a module mapping (B, 3, H, W) → 4 maps (strides 4..32) with a ``channels`` list.
        head: :class:`Mask2FormerHead`.
        classifier: :class:`TextClassifier` (one projection per decoder prediction).
        pixel_mean, pixel_std: normalisation of [0, 1] RGB input.
    """

    def __init__(self, backbone: nn.Module, head: Mask2FormerHead, classifier: TextClassifier,
                 pixel_mean, pixel_std):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.classifier = classifier
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor, text: torch.Tensor | None = None) -> list[Prediction]:
        """Run the model.

        Args:
            images: (B, 3, H, W) RGB in [0, 1]; H, W multiples of 32.
            text: (M, D) name embeddings; when given every prediction carries logits.

        Returns:
            L :class:`Prediction` (decoder layers + 1), the last one final.

        Raises:
            ValueError: H or W not a multiple of 32.
        """
        if images.shape[-1] % 32 or images.shape[-2] % 32:
            raise ValueError(f"image size {tuple(images.shape[-2:])} must be a multiple of 32 (pad first)")
        x = (images - self.pixel_mean) / self.pixel_std
        out = self.head(self.backbone(x))
        priors, embeddings = self.classifier.embed(out.queries)
        preds = []
        for p, e, m in zip(priors, embeddings, out.masks):
            preds.append(Prediction(p, e, m, self.classifier.logits(e, text) if text is not None else None))
        return preds

    @torch.no_grad()
    def segment(self, images: torch.Tensor, text: torch.Tensor, class_index: torch.Tensor,
                num_classes: int, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Semantic scores for any vocabulary (Mask2Former semantic inference).

        Args:
            images: (B, 3, H, W) in [0, 1], multiples of 32.
            text: (M, D) name embeddings; class_index: (M,) class of each name (max over names).
            num_classes: K.
            size: output (H', W'); default the input size.

        Returns:
            (B, K, H', W') float32 scores.
        """
        final = self(images, text)[-1]
        logits = names_to_classes(final.logits, class_index, num_classes)
        masks = upsample_masks(final.masks, size or tuple(images.shape[-2:]))
        return semantic_inference(logits, masks)


def build_backbone(params, clip=None) -> nn.Module:
    """The backbone named by ``params.backbone`` (:class:`ovlab.config.segmenter.ModelParams`).

    Raises:
        TypeError: ``kind: clip`` with a CLIP that is not a ResNet.
        ValueError: ``kind: clip`` without a CLIP model.
    """
    b = params.backbone
    if b.kind == "clip":
        if clip is None:
            raise ValueError("backbone.kind 'clip' needs the stage's CLIP model")
        return ClipResNetTrunk(clip.model.visual)
    if b.kind == "tiny":
        return SmallConvTrunk()
    if b.kind == "swin":  # timm's Swin with Mask2Former's res2–res5 (ovlab.segmenter.swin)
        from ovlab.segmenter.swin import SwinBackbone

        return SwinBackbone.from_variant(b.swin, weights=b.weights, window_padding=b.window_padding,
                                         drop_path_rate=b.drop_path_rate)
    return TorchvisionResNetTrunk(b.depth, b.weights)


def build_segmenter(params, embed_dim: int, clip=None) -> Segmenter:
    """Build a :class:`Segmenter` from :class:`ovlab.config.segmenter.ModelParams` (seed torch first).

    Args:
        params: the model section.
        embed_dim: CLIP joint dimension D of the text embeddings.
        clip: the :class:`ovlab.clip.ClipModel` whose visual trunk is copied (``backbone.kind: clip``).
    """
    backbone = build_backbone(params, clip)
    cfg = mask2former_config(hidden_dim=params.hidden_dim, mask_dim=params.mask_dim, num_queries=params.num_queries,
                             decoder_layers=params.decoder_layers, encoder_layers=params.encoder_layers,
                             heads=params.heads, ffn_dim=params.ffn_dim, encoder_ffn_dim=params.encoder_ffn_dim)
    head = Mask2FormerHead(cfg, backbone.channels)
    classifier = TextClassifier(params.hidden_dim, embed_dim, params.decoder_layers + 1,
                                logit_scale_init=params.logit_scale_init, learn_logit_scale=params.learn_logit_scale)
    return Segmenter(backbone, head, classifier, params.pixel_mean, params.pixel_std)
