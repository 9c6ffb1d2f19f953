"""The process environment a stage runs in: seeds, offline flags, the NLTK data path."""

from __future__ import annotations

import os
import random

# Hubs the libraries we use could reach: all switched off. Weights and data come from local files.
OFFLINE_FLAGS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "OVLAB_OFFLINE": "1",
    "DVC_NO_ANALYTICS": "1",
}


def stage_environment(seed: int, *, offline: bool = True, cache_dir: str | None = None) -> dict[str, str]:
    """Environment variables for a stage's kernel.

    Sets ``PYTHONHASHSEED`` and ``OVLAB_SEED``, the deterministic cuBLAS workspace, the offline
    flags of Hugging Face / open_clip / DVC
    (:data:`OFFLINE_FLAGS`) and, when WordNet comes from the system dict, ``NLTK_DATA`` so that
    ``nltk.corpus.wordnet`` works inside the notebook too. WordNet being absent is not an error
    here: the stages that need it raise their own clear error.
    """
    env = {
        "PYTHONHASHSEED": str(seed),
        "OVLAB_SEED": str(seed),
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "TQDM_DISABLE": os.environ.get("TQDM_DISABLE", ""),
    }
    if cache_dir:
        env["OVLAB_CACHE"] = str(cache_dir)
    if offline:
        env.update(OFFLINE_FLAGS)
    from ovlab.vocab.wordnet import WordNetNotFoundError, nltk_data_dir

    try:
        extra = nltk_data_dir(cache_dir)
    except WordNetNotFoundError:
        extra = None
    if extra is not None:
        current = os.environ.get("NLTK_DATA", "")
        env["NLTK_DATA"] = os.pathsep.join(p for p in (current, str(extra)) if p)
    return {k: v for k, v in env.items() if v != "" or k in os.environ}


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; optionally ask torch for deterministic kernels.

    Same params + same seed give bit-identical metrics on CPU (DEVELOPERS.md); on GPU,
    ``deterministic=True`` also makes cuDNN/cuBLAS deterministic where torch can.
    """
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
