"""Text banks: class-name embeddings with prompt templates, multi-name classes and a disk cache.

Template ensembling (SCAN / OVSeg / ViLD; the templates of SCAN ``text_template.py``): each
template's embedding is L2-normalised, the T embeddings are averaged, the mean is renormalised.
With no template (GKC training, ``TEXT_ENCODER.PROMPT='{}'``; the GKC paper mentions templates,
its code uses none) the name itself is encoded. Multi-name classes (ADE-847 comma lists, VIPSeg
``a_or_b``) get one embedding per name; a class logit is the **max over its names' logits**, before softmax (GKC
``mask2former/maskformer_model_voca_dense_kd_syn.py`` L778–781).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ovlab.atomic import write_with
from ovlab.data.names import split_multi_name
from ovlab.clip.loading import ClipModel

# The 14 ViLD templates (ViLD; OVSeg appendix A.2; SCAN text_template.py), in their usual order.
VILD_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "none": ("{}",),                     # GKC training: raw names
    "photo": ("a photo of a {}.",),       # the single CLIP template
    "vild": VILD_TEMPLATES,              # SCAN / OVSeg
}


NAME_ENCODINGS: tuple[str, ...] = ("split", "whole")
"""How a multi-name class string ("person, individual, someone") becomes text embeddings:

- ``split``: one embedding per name (:func:`ovlab.data.names.split_multi_name`), class logit = max over
  its names (GKC's code, ``mask2former/maskformer_model_voca_dense_kd_syn.py`` L778–781; ovlab's
  default for GKC and kit-trained models);
- ``whole``: the whole string under each template, one embedding per class (SCAN's code:
  ``scan/modeling/clip_adapter/text_template.py`` formats the class name as the dataset writes it,
  for the in-model and the CLIP classifier alike). The SCAN paper is silent, so SCAN's sections
  default to the official ``whole`` (``scan.name_encoding``), ``split`` one switch away.
"""


def resolve_templates(templates: str | Sequence[str]) -> list[str]:
    """``"none"`` / ``"photo"`` / ``"vild"``, a single template string containing ``{}``, or a list of them.

    Raises:
        ValueError: unknown set name, or a template without ``{}``.
    """
    if isinstance(templates, str):
        if templates in TEMPLATE_SETS:
            return list(TEMPLATE_SETS[templates])
        templates = [templates]
    out = list(templates)
    if not out:
        raise ValueError("empty template list")
    for t in out:
        if "{}" not in t:
            raise ValueError(f"template {t!r} has no '{{}}' placeholder (known sets: {', '.join(TEMPLATE_SETS)})")
    return out


@torch.no_grad()
def encode_names(clip: ClipModel, names: Sequence[str], templates: str | Sequence[str] = "none",
                 *, batch_size: int = 256) -> torch.Tensor:
    """Template-ensembled text embedding of each name.

    e(n) = normalise( mean_t normalise( T(template_t.format(n)) ) ), as SCAN and OVSeg do.

    Returns:
        (N, D) float32, unit L2 norm, on CPU.
    """
    tpl = resolve_templates(templates)
    acc = None
    for t in tpl:
        e = clip.encode_text([t.format(n) for n in names], normalize=True, batch_size=batch_size).cpu()
        acc = e if acc is None else acc + e
    mean = acc / len(tpl)
    return mean / mean.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@dataclass
class TextBank:
    """Per-name text embeddings grouped into classes.

    Attributes:
        classes: K class labels (as given).
        names: M names (M ≥ K), each belonging to one class.
        class_index: (M,) int64, the class of each name.
        embeddings: (M, D) float32, unit norm.
        templates: the templates used.
    """

    classes: list[str]
    names: list[str]
    class_index: torch.Tensor
    embeddings: torch.Tensor
    templates: list[str]

    def name_logits(self, image_embeddings: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """scale · cos(image, name): (N, D) -> (N, M). Inputs are L2-normalised here."""
        img = image_embeddings.float()
        img = img / img.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return scale * img @ self.embeddings.to(img.device).T

    def logits(self, image_embeddings: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Class logits, max over each class's names: (N, D) -> (N, K).

        As GKC ``mask2former/maskformer_model_voca_dense_kd_syn.py`` L778–781.
        """
        nl = self.name_logits(image_embeddings, scale)
        out = torch.full((nl.shape[0], len(self.classes)), float("-inf"), dtype=nl.dtype, device=nl.device)
        idx = self.class_index.to(nl.device).unsqueeze(0).expand_as(nl)
        return out.scatter_reduce(1, idx, nl, reduce="amax", include_self=True)

    def class_names(self, k: int) -> list[str]:
        """The names of class ``k``."""
        return [n for n, c in zip(self.names, self.class_index.tolist()) if c == k]


def _cache_key(clip: ClipModel, templates: list[str], groups: list[list[str]]) -> str:
    doc = {"model": clip.name, "weights": clip.weights_key(), "quick_gelu": clip.quick_gelu,
           "templates": templates, "names": groups}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]


def build_text_bank(
    clip: ClipModel,
    classes: Sequence[str | Sequence[str]],
    templates: str | Sequence[str] = "none",
    *,
    split_multi: bool = True,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
    name_encoding: str | None = None,
) -> TextBank:
    """Encode a vocabulary into a :class:`TextBank`.

    Args:
        clip: the model.
        classes: K entries; a string is split into names with
            :func:`ovlab.data.names.split_multi_name` when ``split_multi`` (``"wall, brick wall"``,
            ``"bag_or_package"``), a list of strings is taken as the class's names verbatim.
        templates: see :func:`resolve_templates`.
        name_encoding: ``split`` or ``whole`` (:data:`NAME_ENCODINGS`); when given it sets
            ``split_multi`` (``whole`` = ``split_multi=False``).
        cache_dir: when set, the bank is stored as ``<cache_dir>/text_bank/<key>.pt``, the key hashing
            the model name, its weights (tag + checkpoint file identity, or untrained seed), the
            templates and the names; a later call with the same key reads it instead of encoding.

    Raises:
        ValueError: an empty class or vocabulary, or an unknown ``name_encoding``.
    """
    if name_encoding is not None:
        if name_encoding not in NAME_ENCODINGS:
            raise ValueError(f"name_encoding must be one of {NAME_ENCODINGS}, got {name_encoding!r}")
        split_multi = name_encoding == "split"
    groups = []
    for c in classes:
        names = (split_multi_name(c) if split_multi else [c]) if isinstance(c, str) else list(c)
        if not names:
            raise ValueError(f"class {c!r} has no names")
        groups.append(names)
    if not groups:
        raise ValueError("empty vocabulary")
    tpl = resolve_templates(templates)
    labels = [c if isinstance(c, str) else (list(c)[0]) for c in classes]
    flat = [n for g in groups for n in g]
    index = torch.tensor([k for k, g in enumerate(groups) for _ in g], dtype=torch.int64)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / "text_bank" / f"{_cache_key(clip, tpl, groups)}.pt"
        if path.is_file():
            emb = torch.load(path, map_location="cpu", weights_only=True)
            if emb.shape[0] == len(flat):
                return TextBank(labels, flat, index, emb, tpl)
    emb = encode_names(clip, flat, tpl, batch_size=batch_size)
    if path is not None:
        write_with(path, lambda fh: torch.save(emb, fh))
    return TextBank(labels, flat, index, emb, tpl)
