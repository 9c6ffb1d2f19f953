"""Mask2Former pixel decoder and masked-attention transformer decoder, from Hugging Face transformers.

We reuse ``transformers``' pure-PyTorch Mask2Former modules (multi-scale deformable attention
through ``grid_sample``; no compiled CUDA op) and drive them with our own backbone (GKC §3, Fig. 2):

- pixel decoder: deformable-attention encoder on res3–res5 (``encoder_layers``, 6 in GKC), FPN
  to the 1/4 mask features (``mask_dim``), GroupNorm;
- transformer decoder: ``num_queries`` learnable queries, ``decoder_layers`` = 9 masked-attention
  layers + the prediction from the learnable queries (transformers counts them together as 10),
  hidden 256, 8 heads, FFN 2048, post-norm, dropout 0; every layer predicts masks (deep supervision).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import Mask2FormerConfig
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerPixelDecoder,
    Mask2FormerPreTrainedModel,
    Mask2FormerTransformerModule,
)


@dataclass
class DecoderOutput:
    """What :class:`Mask2FormerHead` returns for a batch of B images of size H×W.

    Attributes:
        queries: L tensors (B, Q, hidden): the decoder-normed query features, one per prediction
            (L = decoder layers + 1; the last is the final prediction).
        masks: L tensors (B, Q, H/4, W/4): mask logits of the same predictions.
    """

    queries: list[torch.Tensor]
    masks: list[torch.Tensor]


def mask2former_config(*, hidden_dim: int, mask_dim: int, num_queries: int, decoder_layers: int,
                       encoder_layers: int, heads: int, ffn_dim: int, encoder_ffn_dim: int,
                       dropout: float = 0.0, pre_norm: bool = False) -> Mask2FormerConfig:
    """A transformers ``Mask2FormerConfig`` for the head (``decoder_layers`` masked-attention layers).

    Raises:
        ValueError: ``hidden_dim`` / ``mask_dim`` not divisible by 32 (GroupNorm(32, ·)) or by ``heads``.
    """
    for name, v in (("hidden_dim", hidden_dim), ("mask_dim", mask_dim)):
        if v % 32:
            raise ValueError(f"{name} must be a multiple of 32 (GroupNorm with 32 groups), got {v}")
    if hidden_dim % heads:
        raise ValueError(f"hidden_dim {hidden_dim} must be divisible by heads {heads}")
    return Mask2FormerConfig(
        feature_size=hidden_dim, mask_feature_size=mask_dim, hidden_dim=hidden_dim,
        encoder_feedforward_dim=encoder_ffn_dim, encoder_layers=encoder_layers,
        decoder_layers=decoder_layers + 1, num_attention_heads=heads, dim_feedforward=ffn_dim,
        dropout=dropout, pre_norm=pre_norm, num_queries=num_queries, common_stride=4,
        feature_strides=[4, 8, 16, 32], enforce_input_projection=False, use_auxiliary_loss=True,
    )


class Mask2FormerHead(Mask2FormerPreTrainedModel):
    """Pixel decoder + masked-attention decoder over backbone features (Mask2Former; GKC §3, Fig. 2).

    Args:
        config: see :func:`mask2former_config`.
        feature_channels: the backbone's res2..res5 channels.

    Shapes: ``forward(features)`` with 4 maps (B, C_i, H/s_i, W/s_i) → :class:`DecoderOutput`.
    Weights are initialised by transformers' own Mask2Former rules (``post_init``), from the torch seed.
    """

    def __init__(self, config: Mask2FormerConfig, feature_channels: list[int]):
        super().__init__(config)
        self.pixel_decoder = Mask2FormerPixelDecoder(config, feature_channels=list(feature_channels))
        self.transformer = Mask2FormerTransformerModule(in_features=config.feature_size, config=config)
        self.post_init()

    def forward(self, features: list[torch.Tensor]) -> DecoderOutput:  # type: ignore[override]
        pix = self.pixel_decoder(features, output_hidden_states=False, return_dict=True)
        dec = self.transformer(multi_scale_features=list(pix.multi_scale_features), mask_features=pix.mask_features)
        queries = [q.transpose(0, 1) for q in dec.intermediate_hidden_states]
        return DecoderOutput(queries=queries, masks=list(dec.masks_queries_logits))
