"""Losses: Mask2Former matching and mask/class losses (spec §2.3), GKC text diversification, distillation
(GKC Eq. 2–3, spec §3) and grounding (spec §2.3)."""
