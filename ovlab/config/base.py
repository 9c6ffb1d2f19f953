"""``base`` section: what every stage shares (seed, profile, output folders)."""

from __future__ import annotations

from typing import Literal

from ovlab.config.schema import Section


class PathsParams(Section):
    """Output folders, relative to the params file's folder."""

    results: str = "results"
    reports: str = "reports"
    cache: str = ".cache/ovlab"


class BaseParams(Section):
    """Settings shared by all stages.

    Attributes:
        profile: ``embedded`` (synthetic data, untrained tiny CLIP, whole pipeline in minutes on
            2 CPU cores), ``paper`` (the papers' settings; needs real data, weights and GPUs) or
            ``paper-smoke`` (the paper profile with only sizes and counts shrunk and tiny untrained
            CLIPs, on the simulated datasets of :mod:`ovlab.data.simulate`: ``profiles/paper-smoke.yaml``).
        seed: global seed; same params + same seed give bit-identical metrics on CPU.
        deterministic: ask torch for deterministic kernels (``torch.use_deterministic_algorithms``).
        device: ``cpu``, ``cuda`` or ``auto`` (cuda when available).
        paths: output folders.
    """

    profile: Literal["embedded", "paper", "paper-smoke"] = "embedded"
    seed: int = 0
    deterministic: bool = True
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    paths: PathsParams = PathsParams()
