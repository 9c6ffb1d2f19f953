"""The model configurations that the benchmarks measure (``ovlab bench train``, ``ovlab bench cost``).

``embedded`` and ``paper`` are the ``tgkd`` model of each profile: the tiny CLIP ResNet of the
embedded profile, and GKC's RN50 CLIP with Mask2Former's 100 queries and 9 decoder layers at 512²
crops (GKC §4.2).
"""

from __future__ import annotations

#: Model/loss/input of the two configurations (params.yaml `tgkd` values of each profile).
CONFIGS: dict[str, dict] = {
    "embedded": {"clip": "ovlab-tiny-rn", "crop": 128, "batch": 4,
                 "model": {"hidden_dim": 64, "mask_dim": 64, "num_queries": 16, "decoder_layers": 3,
                           "encoder_layers": 1, "heads": 4, "ffn_dim": 256, "encoder_ffn_dim": 256},
                 "loss": {"num_points": 1024}},
    "paper": {"clip": "RN50", "crop": 512, "batch": 2,
              "model": {"hidden_dim": 256, "mask_dim": 256, "num_queries": 100, "decoder_layers": 9,
                        "encoder_layers": 6, "heads": 8, "ffn_dim": 2048, "encoder_ffn_dim": 1024},
              "loss": {"num_points": 12544}},
}
