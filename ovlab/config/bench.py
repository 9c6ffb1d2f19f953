"""The model configurations that the benchmarks measure (``ovlab bench train``, ``ovlab bench cost``).

Each is the ``tgkd`` model of a profile, read from ``profiles/<name>.yaml`` over the schema defaults,
so every paper value is stated once (in the profile): ``embedded`` is the tiny CLIP ResNet of the
embedded profile; ``paper`` is GKC's RN50 CLIP with Mask2Former's 100 queries and 9 decoder layers
at 512² crops (GKC §4.2). Only the batch size is the benchmarks' own (one GPU's share).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
BENCH_BATCH = {"embedded": 4, "paper": 2}
MODEL_KEYS = ("hidden_dim", "mask_dim", "num_queries", "decoder_layers", "encoder_layers", "heads", "ffn_dim",
              "encoder_ffn_dim")


def bench_config(name: str, profiles_dir: str | Path | None = None) -> dict:
    """``{"clip", "crop", "batch", "model": {...}, "loss": {"num_points"}}`` of profile ``name``.

    Raises:
        KeyError: not a benchmark configuration (``embedded`` | ``paper``).
        FileNotFoundError: the profile file is missing (the message names it).
    """
    if name not in BENCH_BATCH:
        raise KeyError(name)
    from ovlab.config.tgkd import TgkdParams

    path = Path(profiles_dir or PROFILES_DIR) / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: profile file not found (the benchmark configurations are read from it)")
    section = dict((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("tgkd") or {})
    section.pop("grids", None)
    cfg = TgkdParams.model_validate(section, strict=False)
    return {"clip": cfg.clip.model, "crop": cfg.augment.crop_size, "batch": BENCH_BATCH[name],
            "model": {k: getattr(cfg.model, k) for k in MODEL_KEYS}, "loss": {"num_points": cfg.loss.num_points}}


class _Configs(Mapping):
    """``CONFIGS[name]`` = :func:`bench_config` (read when asked)."""

    def __getitem__(self, name: str) -> dict:
        return bench_config(name)

    def __iter__(self) -> Iterator[str]:
        return iter(BENCH_BATCH)

    def __len__(self) -> int:
        return len(BENCH_BATCH)


CONFIGS: Mapping[str, dict] = _Configs()
