"""Loading any open_clip model offline: named pretrained tags, local checkpoints, explicit untrained.

Where weights must be (searched in this order for ``load_clip(name, pretrained=TAG)``; nothing is
downloaded unless ``allow_download=True`` or ``OVLAB_ALLOW_DOWNLOAD=1``):

1. ``<weights_dir>/<name>/<tag>.{safetensors,bin,pt,pth}`` or a folder ``<weights_dir>/<name>/<tag>/``
   holding ``open_clip_model.safetensors`` / ``open_clip_pytorch_model.bin``, where
   ``weights_dir`` is the argument, else ``$OVLAB_WEIGHTS``, else ``~/.cache/ovlab/weights``;
2. open_clip's URL cache: ``<cache_dir or ~/.cache/clip>/<file name of the tag's URL>``
   (e.g. ``~/.cache/clip/ViT-B-32.pt`` for ``openai``);
3. the Hugging Face cache (``<cache_dir>`` or ``$HF_HUB_CACHE`` / ``~/.cache/huggingface/hub``) of the
   tag's ``hf_hub`` repository, read with ``huggingface_hub.try_to_load_from_cache`` (no network).

``pretrained`` may also be a path to a checkpoint file (a state dict saved by
:func:`save_checkpoint`, an open_clip/OpenAI ``.pt``/``.bin``/``.safetensors``). ``pretrained=None``
builds an **untrained** model whose weights are a deterministic function of ``seed``; it warns loudly
and :meth:`ClipModel.identity` carries :data:`UNTRAINED_WARNING` into every metrics file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from ovlab.atomic import write_with
from ovlab.caveats import drop_log_messages, warn_once
from ovlab.clip.registry import register_tiny_configs

CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
HF_FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
UNTRAINED_WARNING = (
    "UNTRAINED CLIP: this model has random weights (pretrained: null); every number made with it "
    "checks the pipeline only and says nothing about CLIP or the method."
)


class WeightsNotFoundError(FileNotFoundError):
    """The weights for a named pretrained tag are not on disk and downloads are not allowed.

    The message names the model and tag, every place searched, and where to put the file.
    """


@dataclass
class ClipModel:
    """A frozen open_clip model in eval mode with everything needed to use it.

    Attributes:
        model: the open_clip ``CLIP`` module (``requires_grad=False``, ``eval()``).
        name: open_clip model name (``ViT-B-32``, ``ovlab-tiny-rn``...).
        pretrained: the tag or checkpoint path asked for; ``None`` for untrained.
        checkpoint: the file the weights came from (``None`` when untrained).
        untrained: random weights (from ``seed``).
        seed: the seed of the untrained weights (``None`` otherwise).
        image_size: (H, W) in pixels the visual tower expects.
        mean, std: per-channel normalisation for images in [0, 1] (RGB).
        interpolation, resize_mode: what the matching preprocessing does (open_clip names).
        quick_gelu: whether the model was built with QuickGELU (follows the tag, see :func:`load_clip`).
        preprocess: the eval transform (PIL image -> (3, H, W) float tensor), from open_clip.
        tokenizer: ``tokenizer(list[str]) -> (N, context_length) int64``.
        device: where the model lives.
    """

    model: torch.nn.Module
    name: str
    pretrained: str | None
    checkpoint: Path | None
    untrained: bool
    seed: int | None
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    resize_mode: str
    quick_gelu: bool
    preprocess: Any
    tokenizer: Any
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def family(self) -> str:
        """``resnet`` (ModifiedResNet visual tower), ``vit`` (open_clip VisionTransformer) or ``other``."""
        from open_clip.modified_resnet import ModifiedResNet
        from open_clip.transformer import VisionTransformer

        v = self.model.visual
        return "resnet" if isinstance(v, ModifiedResNet) else "vit" if isinstance(v, VisionTransformer) else "other"

    @property
    def logit_scale(self) -> float:
        """CLIP's learned logit scale τ = exp(θ) (100 for OpenAI CLIP, ≈14.29 untrained)."""
        return float(self.model.logit_scale.exp().item())

    def weights_key(self) -> str:
        """A string that changes whenever the weights could: tag, checkpoint path+size+mtime, or seed."""
        if self.untrained:
            return f"untrained:seed={self.seed}"
        if self.checkpoint is None or not self.checkpoint.is_file():
            return f"{self.pretrained}|{self.checkpoint}"
        st = self.checkpoint.stat()
        return f"{self.pretrained}|{self.checkpoint.resolve()}|{st.st_size}|{st.st_mtime_ns}"

    def identity(self) -> dict:
        """What to write into metrics files: model, weights, untrained flag and the loud warning."""
        out = {"model": self.name, "pretrained": self.pretrained,
               "checkpoint": str(self.checkpoint) if self.checkpoint else None,
               "untrained": self.untrained, "quick_gelu": self.quick_gelu}
        if self.untrained:
            out["seed"] = self.seed
            out["warning"] = UNTRAINED_WARNING
        return out

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float RGB in [0, 1] -> CLIP-normalised (x - mean) / std, same shape."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images - mean) / std

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """Final image embeddings.

        Args:
            images: (B, 3, H, W) float, already CLIP-normalised, H×W = :attr:`image_size`.
            normalize: L2-normalise the output.

        Returns:
            (B, D) float32 (D = CLIP embed dim).
        """
        return self.model.encode_image(images.to(self.device), normalize=normalize).float()

    @torch.no_grad()
    def encode_text(self, texts: list[str], *, normalize: bool = True, batch_size: int = 256) -> torch.Tensor:
        """Text embeddings (EOT feature × text projection) of the strings, in batches.

        Returns:
            (N, D) float32; L2-normalised when ``normalize``.
        """
        out = []
        for i in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[i:i + batch_size])).to(self.device)
            out.append(self.model.encode_text(tokens, normalize=normalize).float())
        if not out:
            return torch.zeros(0, int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") else 0)
        return torch.cat(out)


def default_weights_dir(weights_dir: str | os.PathLike | None = None) -> Path:
    """``weights_dir`` if given, else ``$OVLAB_WEIGHTS``, else ``~/.cache/ovlab/weights``."""
    if weights_dir:
        return Path(os.path.expanduser(str(weights_dir)))
    env = os.environ.get("OVLAB_WEIGHTS")
    return Path(os.path.expanduser(env)) if env else Path.home() / ".cache" / "ovlab" / "weights"


def _looks_like_path(pretrained: str) -> bool:
    return (os.sep in pretrained or "/" in pretrained or pretrained.startswith((".", "~"))
            or pretrained.endswith(CHECKPOINT_SUFFIXES))


def candidate_paths(name: str, tag: str, *, weights_dir=None, cache_dir=None) -> list[Path]:
    """Every local file :func:`find_local_weights` looks at for ``(name, tag)``, in order (no network).

    The Hugging Face cache is not listed here (it is queried through ``huggingface_hub``).
    """
    from open_clip.pretrained import get_pretrained_cfg

    wd = default_weights_dir(weights_dir)
    out = [wd / name / f"{tag}{s}" for s in CHECKPOINT_SUFFIXES]
    out += [wd / name / tag / f for f in HF_FILENAMES]
    cfg = get_pretrained_cfg(name, tag)
    url = cfg.get("url", "") if cfg else ""
    if url:
        out.append(Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(url))
    return out


def find_local_weights(name: str, tag: str, *, weights_dir=None, cache_dir=None) -> Path | None:
    """The first local checkpoint for ``(name, tag)`` (see the module docstring), or ``None``. No network."""
    for p in candidate_paths(name, tag, weights_dir=weights_dir, cache_dir=cache_dir):
        if p.is_file():
            return p
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(name, tag) or {}
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover
            return None
        if hub.endswith("/"):  # open_clip's convention: 'org/repo/' = the default file names
            repo, names = hub[:-1], list(HF_FILENAMES)
        else:
            repo, filename = os.path.split(hub)
            names = [filename[:-4] + ".safetensors", filename] if filename.endswith((".bin", ".pth")) else [filename]
        for fn in names:
            hit = try_to_load_from_cache(repo, fn, cache_dir=cache_dir)
            if isinstance(hit, str) and os.path.isfile(hit):
                return Path(hit)
    return None


def _not_found_message(name: str, tag: str, weights_dir, cache_dir) -> str:
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(name, tag) or {}
    searched = "\n".join(f"  - {p}" for p in candidate_paths(name, tag, weights_dir=weights_dir, cache_dir=cache_dir))
    hub = cfg.get("hf_hub", "")
    if hub:
        searched += f"\n  - Hugging Face cache ({cache_dir or 'HF_HUB_CACHE / ~/.cache/huggingface/hub'}) of {hub.rstrip('/')}"
    wd = default_weights_dir(weights_dir)
    source = cfg.get("url") or (f"https://huggingface.co/{hub.rstrip('/')}" if hub else "the model's release")
    return (
        f"CLIP weights for model {name!r}, pretrained {tag!r} are not on this machine, and ovlab never "
        f"downloads at run time.\nSearched:\n{searched}\n"
        f"Put the checkpoint at {wd / name / (tag + '.safetensors')} (or .bin/.pt; set $OVLAB_WEIGHTS or "
        f"the `weights_dir` parameter to use another folder), or pass the checkpoint file path as `pretrained`. "
        f"The file comes from {source}. To let open_clip download it instead, set allow_download: true "
        f"(or OVLAB_ALLOW_DOWNLOAD=1) on a machine with network access."
    )


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Switch Hugging Face hub access off for the duration (env flags + huggingface_hub constant)."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    const, old = None, None
    with contextlib.suppress(ImportError):
        from huggingface_hub import constants as const

        old = const.HF_HUB_OFFLINE
        const.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if const is not None:
            const.HF_HUB_OFFLINE = old


def load_clip(
    name: str,
    pretrained: str | os.PathLike | None,
    *,
    device: str | torch.device = "cpu",
    weights_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    allow_download: bool | None = None,
    seed: int = 0,
    precision: str = "fp32",
) -> ClipModel:
    """Build an open_clip model, frozen and in eval mode, with its matching preprocessing.

    Args:
        name: any open_clip model name (``RN50``, ``ViT-B-32``, ``ViT-L-14``...) or a tiny config
            of :mod:`ovlab.clip.registry` (``ovlab-tiny-rn``, ``ovlab-tiny-vit``).
        pretrained: **required**. A tag (``openai``, ``datacomp_xl_s13b_b90k``...), a checkpoint file
            path, or ``None`` for an untrained model (random weights from ``seed``; warns loudly).
        device: ``cpu``, ``cuda``, ``auto``.
        weights_dir: where named tags are looked up first (default ``$OVLAB_WEIGHTS`` or
            ``~/.cache/ovlab/weights``), see the module docstring.
        cache_dir: open_clip / Hugging Face cache folder to search (and to download into when allowed).
        allow_download: let open_clip fetch the weights (default: ``$OVLAB_ALLOW_DOWNLOAD == "1"``).
        seed: seed of the untrained weights (ignored otherwise).
        precision: open_clip precision (``fp32``, ``fp16``, ``bf16``).

    QuickGELU follows the tag's recorded training setting (OpenAI weights use QuickGELU), where
    open_clip would only warn about a mismatch; the preprocessing (mean, std, interpolation, resize
    mode) is the tag's.

    Returns:
        :class:`ClipModel`.

    Raises:
        WeightsNotFoundError: a named tag whose weights are not on disk (fails at once, no network),
            an unknown tag, or a checkpoint path that does not exist.
        RuntimeError: unknown model name (lists the known ones).
    """
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    register_tiny_configs()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if allow_download is None:
        allow_download = os.environ.get("OVLAB_ALLOW_DOWNLOAD", "") == "1"
    clean = name.replace("/", "-")
    if clean not in open_clip.list_models():
        raise RuntimeError(f"unknown open_clip model {name!r}; known: {', '.join(open_clip.list_models())}")

    tag_cfg: dict = {}
    checkpoint: Path | None = None
    untrained = pretrained is None
    if untrained:
        warn_once(f"{name}: {UNTRAINED_WARNING}")  # once per process, the one channel (ovlab.caveats)
    else:
        pretrained = str(pretrained)
        tag_cfg = get_pretrained_cfg(clean, pretrained) or {}
        if tag_cfg:
            checkpoint = find_local_weights(clean, pretrained, weights_dir=weights_dir, cache_dir=cache_dir)
            if checkpoint is None and not allow_download:
                raise WeightsNotFoundError(_not_found_message(clean, pretrained, weights_dir, cache_dir))
        else:
            p = Path(os.path.expanduser(pretrained))
            if p.is_file():
                checkpoint = p
            elif _looks_like_path(pretrained):
                raise WeightsNotFoundError(f"{pretrained}: checkpoint file not found (pretrained given as a path for model {name!r})")
            else:
                tags = ", ".join(list_pretrained_tags_by_model(clean)) or "none"
                raise WeightsNotFoundError(
                    f"{pretrained!r} is neither a pretrained tag of {name!r} (known tags: {tags}) nor an existing file")

    quick_gelu = bool(tag_cfg.get("quick_gelu", False))
    pre = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
    kwargs = dict(precision=precision, device=device, force_quick_gelu=quick_gelu,
                  force_preprocess_cfg=pre or None, pretrained_text=False, pretrained_image=False)
    if untrained:
        with torch.random.fork_rng(devices=[]), _hub_offline(), drop_log_messages("No pretrained weights loaded"):
            torch.manual_seed(seed)
            model = open_clip.create_model(clean, pretrained=None, **kwargs)
    elif checkpoint is not None:
        with _hub_offline():
            try:
                model = open_clip.create_model(clean, pretrained=str(checkpoint), **kwargs)
            except Exception as exc:  # truncated or foreign weights: torch and pickle raise many kinds
                from ovlab.data.errors import CorruptFileError

                raise CorruptFileError(checkpoint, f"cannot load it as {name} weights ({type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0][:300] if str(exc) else ''})") from None
    else:  # a known tag, not on disk, downloads allowed
        model = open_clip.create_model(clean, pretrained=pretrained, cache_dir=str(cache_dir) if cache_dir else None,
                                       **kwargs)
        checkpoint = find_local_weights(clean, pretrained, weights_dir=weights_dir, cache_dir=cache_dir)

    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    pcfg = getattr(model.visual, "preprocess_cfg", None) or {}
    from open_clip.transform import PreprocessCfg, image_transform_v2

    pp = PreprocessCfg(**pcfg) if pcfg else PreprocessCfg(size=model.visual.image_size)
    preprocess = image_transform_v2(pp, is_train=False)
    with _hub_offline():
        tokenizer = open_clip.get_tokenizer(clean)
    size = model.visual.image_size
    size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
    return ClipModel(
        model=model, name=clean, pretrained=None if untrained else str(pretrained), checkpoint=checkpoint,
        untrained=untrained, seed=seed if untrained else None, image_size=size,
        mean=tuple(pp.mean), std=tuple(pp.std), interpolation=pp.interpolation, resize_mode=pp.resize_mode,
        quick_gelu=quick_gelu or bool((open_clip.get_model_config(clean) or {}).get("quick_gelu", False)), preprocess=preprocess,
        tokenizer=tokenizer, device=device,
    )


def save_checkpoint(clip: ClipModel, path: str | os.PathLike) -> Path:
    """Write the model's state dict to ``path`` atomically (torch format), loadable as ``pretrained=path``."""
    return write_with(path, lambda fh: torch.save(clip.model.state_dict(), fh))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (to record which checkpoint a result came from)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_clip_from_params(cfg, stage) -> ClipModel:
    """:func:`load_clip` from a :class:`ovlab.config.clip.ClipParams` section of a stage.

    Paths resolve against the stage root; the untrained seed is ``base.seed``; the device is
    ``base.device``.

    Raises:
        ValueError: ``pretrained`` was omitted (an untrained model needs an explicit ``null``).
        WeightsNotFoundError: see :func:`load_clip`.
    """
    if cfg.pretrained is None and "pretrained" not in cfg.model_fields_set:
        raise ValueError(f"{stage.source}: {stage.name}.clip.pretrained: missing; write a tag, a checkpoint path, "
                         f"or `null` to use an untrained model on purpose")
    pretrained = cfg.pretrained
    if pretrained is not None:
        from open_clip.pretrained import get_pretrained_cfg

        if not get_pretrained_cfg(cfg.model.replace("/", "-"), pretrained) and _looks_like_path(pretrained):
            pretrained = str(stage.path(pretrained))
    return load_clip(
        cfg.model, pretrained, device=stage.base.device,
        weights_dir=stage.path(cfg.weights_dir) if cfg.weights_dir else None,
        cache_dir=stage.path(cfg.cache_dir) if cfg.cache_dir else None,
        allow_download=cfg.allow_download or None, seed=stage.base.seed, precision=cfg.precision,
    )
