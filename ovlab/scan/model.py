"""The SCAN segmenter: Mask2Former proposals calibrated by SIM, classified by the text classifier and
by a Contextual-Shift CLIP on masked crops, scores ensembled (SCAN §3, Fig. 2).

Training and test (SCAN §3.1, Eq. 1–3; official code yongliu20/SCAN ``scan/ovseg_model.py``): the
proposal embeddings F_N of every decoder prediction go through the Semantic Integration Module
(:class:`ovlab.scan.sim.SemanticIntegrationModule`, shared weights, one memory per batch), fed by the
frozen original CLIP ViT (spatial tokens of the selected blocks and the final embedding of the
padded, CLIP-normalised image resized with ``nearest``), before the τ·cos text classifier with its
void column.

Test only (SCAN §3.2 and Fig. 2; yongliu20/SCAN ``scan/ovseg_model.py`` ``semantic_inference`` and
``scan/modeling/clip_adapter/adapter.py``), with the numbers of one :class:`ovlab.config.scan.ScanInference`
(:meth:`ScanSegmenter.set_inference`):

1. binarise each final mask (σ(mask logits upsampled to the input) > ``mask_threshold``); drop
   empty masks;
2. masked crops of the image (bbox, fill with the CLIP mean, bicubic resize to the CLIP size,
   CLIP-normalised), embedded by the mask-classifying CLIP with Contextual Shift
   (:class:`ovlab.scan.contextual_shift.ContextualShiftCLIP`, ratio ``cs_ratio``; the [CLS]
   substitutes come from the original CLIP on the natural image);
3. z_clip = ``clip_logit_scale``·cos(crop, names), max over each class's names;
4. ``mode`` (SCAN Tab. 8): ``mask`` p = softmax(z_in)[:K]; ``clip`` p = softmax(z_clip), empty masks
   dropped; ``both`` p = p_in^(1−λ)·p_clip^λ, λ = ``clip_weight``
   (:func:`ovlab.segmenter.ensemble.ensemble_probabilities`, ``renormalize``);
5. seg_c(x) = Σ_q p_{q,c}·σ(m_q(x)) (:func:`ovlab.segmenter.ensemble.semantic_inference`).

The CLIP towers are frozen and kept **outside** the module tree: they are not in ``state_dict()``
(a ``model.pt`` holds the trained weights only; the CLIP is rebuilt from the stage's ``clip``
section), not in the optimiser, but ``.to()`` moves them with the model.

Padding: by default (``scan.eval_padding: grey``, kit-trained models) the [0, 1] input is padded
with grey and the crops are taken from the padded image; ``image_sizes`` (:meth:`ScanSegmenter.segment`;
``official_padding``, set for converted checkpoints and ``eval_padding: official``) reproduces the
official pipeline: padding 0 *after* normalisation for the backbone and the CLIP, crops from the
unpadded image. Proposal head: SCAN's shared MLP (:class:`ovlab.scan.head.ScanClassifier`,
``model.head: scan``) or GKC's (``gkc``). :func:`build_converted_segmenter` builds the official
architecture of a converted checkpoint (:mod:`ovlab.scan.convert`); it reproduces the official forward
stage by stage (``tests/test_scan_parity.py``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ovlab.clip.crops import masked_crops
from ovlab.config.scan import INFERENCE_MODES, ScanInference
from ovlab.scan.contextual_shift import ContextualShiftCLIP
from ovlab.scan.head import ScanClassifier
from ovlab.scan.sim import SemanticIntegrationModule, clip_sim_inputs
from ovlab.segmenter.ensemble import binarize_masks, clip_probabilities, ensemble_probabilities, semantic_inference
from ovlab.segmenter.inference import names_to_classes, upsample_masks
from ovlab.segmenter.model import Prediction, Segmenter, build_segmenter

__all__ = ["INFERENCE_MODES", "ScanInference", "ScanSegmenter", "build_scan_segmenter"]


class ScanSegmenter(Segmenter):
    """SCAN: a :class:`ovlab.segmenter.model.Segmenter` with SIM, CS-CLIP mask classification and the ensemble.

    Args:
        backbone, head, classifier, pixel_mean, pixel_std: as :class:`Segmenter`.
        sim: the SIM module, or ``None`` (the baseline without SIM: embeddings unchanged).
        clip_visual: the frozen original CLIP ViT (``clip.model.visual``): SIM inputs and the CS
            [CLS] substitutes.
        mask_clip: the mask-classifying :class:`ContextualShiftCLIP` (its ``visual`` frozen).
        clip_mean, clip_std: CLIP normalisation of [0, 1] RGB.
        sim_layers: 1-based CLIP blocks of SIM's spatial tokens. sim_resize: their resize mode.
        inference: the test-time numbers (:class:`ovlab.config.scan.ScanInference`: mode, mask
            threshold, λ, renormalisation, τ of the crop logits, CS ratio); its CS source, layers
            and seed must be those ``mask_clip`` was built with.
        name_encoding: how evaluation encodes multi-name classes (``whole`` SCAN / ``split``;
            :data:`ovlab.clip.text.NAME_ENCODINGS`), read by ``ovlab.segmenter.evaluate``.
        official_padding: evaluation pads with 0 after normalisation and crops from the unpadded
            image (``image_sizes`` of :meth:`segment`), as the official detectron2 pipeline.

    Attributes:
        settings: the :class:`ScanInference` in use (:meth:`set_inference`).

    Raises:
        TypeError / ValueError: see :meth:`set_inference`.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, classifier: nn.Module, pixel_mean, pixel_std, *,
                 sim: SemanticIntegrationModule | None, clip_visual: nn.Module, mask_clip: ContextualShiftCLIP,
                 clip_mean: Sequence[float], clip_std: Sequence[float], inference: ScanInference,
                 sim_layers: Sequence[int] = (), sim_resize: str = "nearest", name_encoding: str = "whole",
                 official_padding: bool = False):
        super().__init__(backbone, head, classifier, pixel_mean, pixel_std)
        self.name_encoding = name_encoding
        self.official_padding = bool(official_padding)
        self.sim = sim
        # frozen CLIP towers: plain attributes (not sub-modules) so they stay out of state_dict / optimiser
        self._frozen = {"visual": clip_visual, "mask_clip": mask_clip}
        for name, value in (("clip_mean", clip_mean), ("clip_std", clip_std)):
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.sim_layers = [int(i) for i in sim_layers]
        self.sim_resize = sim_resize
        self.settings: ScanInference
        self.set_inference(inference)

    # ------------------------------------------------------------------------------------ plumbing
    @property
    def clip_visual(self) -> nn.Module:
        """The frozen original CLIP ViT."""
        return self._frozen["visual"]

    @property
    def mask_clip(self) -> ContextualShiftCLIP:
        """The mask-classifying CLIP with Contextual Shift."""
        return self._frozen["mask_clip"]

    @property
    def clip_model(self) -> nn.Module | None:
        """The whole open_clip CLIP of a converted official checkpoint (text tower + the
        mask-classifying visual), or ``None`` (a kit-built model keeps its CLIP in the stage)."""
        return self._frozen.get("clip")

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        seen = set()
        for m in (self.clip_visual, self.mask_clip, self._frozen.get("clip")):
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                m._apply(fn)
        return self

    @property
    def benchmark(self) -> str | None:
        """The benchmark the current settings were resolved for (``None`` = none named)."""
        return self.settings.benchmark

    def set_inference(self, settings: ScanInference) -> None:
        """Use the test-time numbers of ``settings`` from now on (e.g. one benchmark's, from
        :meth:`ovlab.config.scan.ScanParams.inference_for`): mode, mask threshold, λ,
        renormalisation, τ of the crop logits and the CS ratio α of the mask-classifying CLIP.

        Raises:
            TypeError: ``settings`` is not a :class:`ScanInference`.
            ValueError: its CS source, layers or seed differ from those the mask-classifying CLIP was
                built with (they shape it: build another model for them).
        """
        if not isinstance(settings, ScanInference):
            raise TypeError(f"set_inference takes a ScanInference, got {type(settings).__name__}")
        clip = self.mask_clip
        built = (clip.source, tuple(int(i) for i in clip.layers), int(clip.seed))
        wanted = (settings.cs_source, settings.cs_layers, settings.cs_seed)
        if wanted != built:
            raise ValueError(f"scan inference: contextual shift (source, layers, seed) {wanted} differ from the "
                             f"mask-classifying CLIP's {built}; they are fixed when the model is built")
        clip.ratio = float(settings.cs_ratio)
        self.settings = settings

    def clip_normalize(self, images: torch.Tensor, image_sizes: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → CLIP-normalised; with ``image_sizes`` the padding is 0 *after*
        normalisation (official: detectron2 ``ImageList`` pads the normalised tensor)."""
        return _zero_padding((images - self.clip_mean) / self.clip_std, image_sizes)

    # --------------------------------------------------------------------------------- train + test
    def calibrate(self, images: torch.Tensor, embeddings: list[torch.Tensor],
                  image_sizes: Sequence[tuple[int, int]] | None = None) -> list[torch.Tensor]:
        """SIM on each decoder prediction's proposal embeddings (SCAN Eq. 2–3; shared memory and [CLS]
        for the aux outputs, as yongliu20/SCAN ``scan/ovseg_model.py``).

        Args:
            images: (B, 3, H, W) in [0, 1]. embeddings: L tensors (B, Q, D).
            image_sizes: per-image (h, w) before padding (official padding, see :meth:`forward`).

        Returns:
            L float32 tensors (B, Q, D); the input list when there is no SIM.
        """
        if self.sim is None:
            return embeddings
        spatial, cls = clip_sim_inputs(self.clip_visual, self.clip_normalize(images, image_sizes), self.sim_layers,
                                       resize=self.sim_resize)
        memory = self.sim.memory(spatial) if self.sim.use_spatial else None
        cls = cls if self.sim.use_cls else None
        return [self.sim(e, cls_embedding=cls, memory=memory) for e in embeddings]

    def forward(self, images: torch.Tensor, text: torch.Tensor | None = None, *,
                final_only: bool = False, image_sizes: Sequence[tuple[int, int]] | None = None) -> list[Prediction]:
        """Run the model (training and the in-model branch of the test).

        Args:
            images: (B, 3, H, W) RGB in [0, 1]; H, W multiples of 32.
            text: (M, D) name embeddings; when given every prediction carries logits (B, Q, M + 1).
            final_only: return the final prediction only (SIM runs once; test time).
            image_sizes: per-image (h, w) of the content before padding: pixels outside are 0
                *after* normalisation, for the backbone and for the CLIP, as the official
                detectron2 ``ImageList`` padding (``None`` = the input is taken as it is).

        Returns:
            L :class:`Prediction` (decoder layers + 1; the last is final), or the final one alone;
            ``embedding`` is the SIM-calibrated F_N^final.

        Raises:
            ValueError: H or W not a multiple of 32.
        """
        if images.shape[-1] % 32 or images.shape[-2] % 32:
            raise ValueError(f"image size {tuple(images.shape[-2:])} must be a multiple of 32 (pad first)")
        x = _zero_padding((images - self.pixel_mean) / self.pixel_std, image_sizes)
        out = self.head(self.backbone(x))
        queries, masks = out.queries, out.masks
        if final_only:
            queries, masks = queries[-1:], masks[-1:]
        priors, embeddings = self.classifier.embed(queries) if not final_only else self._embed_final(queries[0])
        embeddings = self.calibrate(images, embeddings, image_sizes)
        return [Prediction(p, e, m, self.classifier.logits(e, text) if text is not None else None)
                for p, e, m in zip(priors, embeddings, masks)]

    def _embed_final(self, q: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if isinstance(self.classifier, ScanClassifier):
            return self.classifier.embed([q])
        prior = self.classifier.class_embed(q)
        return [prior], [self.classifier.embed_proj[-1](prior)]

    # ------------------------------------------------------------------------------------ test only
    @torch.no_grad()
    def clip_logits(self, images: torch.Tensor, mask_logits: torch.Tensor, text: torch.Tensor,
                    class_index: torch.Tensor, num_classes: int, *,
                    image_sizes: Sequence[tuple[int, int]] | None = None,
                    record: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Classify each proposal's masked crop with the CS-CLIP (SCAN §3.2; crops as in yongliu20/SCAN
        ``scan/modeling/clip_adapter/adapter.py``, logits as ``scan/ovseg_model.py``).

        Args:
            images: (B, 3, H, W) in [0, 1] (the model input).
            mask_logits: (B, Q, h, w) final mask logits.
            text: (M, D) name embeddings. class_index: (M,) class of each name. num_classes: K.
            image_sizes: per-image (h, w) before padding: masks are upsampled to H×W, then masks and
                image are cropped to (h, w) before binarising (official ``sem_seg_postprocess``;
                ``None`` = the padded image, ovlab's default).
            record: when a dict, it receives per image ``bin_masks`` ((Q, h, w) bool),
                ``region_features`` ((N, D) unnormalised), ``crops`` ((N, 3, S, S)) and ``valid``.

        Returns:
            ``(logits, valid)``: (B, Q, K) float32 τ·cos class logits (max over names; 0 where
            invalid) and (B, Q) bool (False = the binarised mask is empty, no crop).
        """
        b, q = mask_logits.shape[:2]
        hp, wp = images.shape[-2:]
        probs_up = upsample_masks(mask_logits.float(), (hp, wp))
        out = torch.zeros(b, q, num_classes, dtype=torch.float32, device=images.device)
        valid = torch.zeros(b, q, dtype=torch.bool, device=images.device)
        names = F.normalize(text.float(), dim=-1)
        visual = self.mask_clip.visual
        size = visual.image_size if isinstance(visual.image_size, (tuple, list)) else (visual.image_size,) * 2
        size = tuple(int(s) for s in size)
        mean, std = self.clip_mean.flatten().tolist(), self.clip_std.flatten().tolist()
        natural = self.clip_normalize(images, image_sizes)
        source = self.mask_clip.source
        for i in range(b):
            h, w = (hp, wp) if image_sizes is None else (int(image_sizes[i][0]), int(image_sizes[i][1]))
            binary, valid_i = binarize_masks(probs_up[i, :, :h, :w], self.settings.mask_threshold)
            valid[i] = valid_i
            if record is not None:
                record.setdefault("bin_masks", []).append(binary.cpu())
                record.setdefault("valid", []).append(valid_i.cpu())
            idx = torch.nonzero(valid_i).flatten()
            if idx.numel() == 0:
                continue
            m = binary[idx].cpu()
            img = images[i, :, :h, :w].detach().float().cpu() * 255.0
            crops, boxes = masked_crops(img, m, size=size, fill="mean", mean=mean, std=std)
            regions = torch.stack([
                F.interpolate(m[k, y0:y1, x0:x1][None, None].float(), size=size, mode="nearest")[0, 0] > 0.5
                for k, (x0, y0, x1, y1) in enumerate(boxes.tolist())])
            unmasked = (masked_crops(img, m, size=size, fill="none", mean=mean, std=std)[0].to(images.device)
                        if source == "original" else None)
            raw = self.mask_clip(crops.to(images.device), regions.to(images.device), natural=natural[i:i + 1],
                                 unmasked=unmasked, normalize=False)
            if record is not None:
                record.setdefault("region_features", []).append(raw.float().cpu())
                record.setdefault("crops", []).append(crops.cpu())
            emb = F.normalize(raw.float(), dim=-1)
            z = self.settings.clip_logit_scale * emb @ names.T                                        # (N, M)
            z = names_to_classes(torch.cat([z, z.new_zeros(z.shape[0], 1)], -1), class_index, num_classes)
            out[i, idx] = z[:, :num_classes]
        return out, valid

    @torch.no_grad()
    def class_probabilities(self, images: torch.Tensor, final: Prediction, text: torch.Tensor,
                            class_index: torch.Tensor, num_classes: int, *,
                            image_sizes: Sequence[tuple[int, int]] | None = None,
                            record: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-proposal class scores p̂ (B, Q, K) of the settings' ``mode`` (SCAN Tab. 8) and the
        queries kept ((B, Q) bool, ``clip`` mode only; else ``None``). ``image_sizes``, ``record``:
        see :meth:`clip_logits` (``record`` also gets ``clip_logits`` and ``probabilities``)."""
        s = self.settings
        z_in = names_to_classes(final.logits, class_index, num_classes)
        if s.mode == "mask":
            return z_in.float().softmax(-1)[..., :-1], None
        z_clip, valid = self.clip_logits(images, final.masks, text, class_index, num_classes,
                                         image_sizes=image_sizes, record=record)
        p_clip = clip_probabilities(z_clip, valid)
        if s.mode == "clip":
            probs, keep = p_clip, valid
        else:
            probs, keep = ensemble_probabilities(z_in, p_clip, s.clip_weight, valid=valid,
                                                 renormalize=s.renormalize), None
        if record is not None:
            record["clip_logits"], record["probabilities"] = z_clip, probs
        return probs, keep

    @torch.no_grad()
    def segment(self, images: torch.Tensor, text: torch.Tensor, class_index: torch.Tensor,
                num_classes: int, size: tuple[int, int] | None = None, *,
                image_sizes: Sequence[tuple[int, int]] | None = None, record: dict | None = None) -> torch.Tensor:
        """Semantic scores for any vocabulary with SIM, CS-CLIP and the ensemble (SCAN Fig. 2;
        yongliu20/SCAN ``scan/ovseg_model.py`` ``semantic_inference``).

        Args:
            images: (B, 3, H, W) in [0, 1], multiples of 32.
            text: (M, D) name embeddings; class_index: (M,) class of each name (max over names).
            num_classes: K.
            size: output (H', W'); default the input size.
            image_sizes: per-image (h, w) before padding (official protocol: padding zero after
                normalisation, crops from the unpadded image; :meth:`forward`, :meth:`clip_logits`).
                The scores are then at the padded size with image i's in ``[:h_i, :w_i]`` (``size``
                must be ``None``).
            record: a dict for intermediate tensors (:meth:`class_probabilities`; also ``final``).

        Returns:
            (B, K, H', W') float32 scores (argmax = the label map).

        Raises:
            ValueError: ``size`` together with ``image_sizes``.
        """
        if image_sizes is not None and size is not None:
            raise ValueError("segment: give either size or image_sizes (crop each image's [:h, :w] afterwards)")
        extra = {} if image_sizes is None else {"image_sizes": image_sizes}
        final = self(images, text, final_only=True, **extra)[-1]
        if record is not None:
            record["final"] = final
        probs, keep = self.class_probabilities(images, final, text, class_index, num_classes,
                                               image_sizes=image_sizes, record=record)
        masks = upsample_masks(final.masks, size or tuple(images.shape[-2:]))
        return semantic_inference(probs, masks, keep)


def _zero_padding(x: torch.Tensor, image_sizes: Sequence[tuple[int, int]] | None) -> torch.Tensor:
    """Set x[i, :, h_i:, :] and x[i, :, :, w_i:] to 0 (normalised-space padding); ``None`` = unchanged."""
    if image_sizes is None:
        return x
    if len(image_sizes) != x.shape[0]:
        raise ValueError(f"image_sizes has {len(image_sizes)} entries for a batch of {x.shape[0]}")
    keep = torch.zeros(x.shape[0], 1, *x.shape[-2:], dtype=torch.bool, device=x.device)
    for i, (h, w) in enumerate(image_sizes):
        keep[i, :, :int(h), :int(w)] = True
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))


def _vit_blocks(visual) -> int:
    from open_clip.transformer import VisionTransformer

    if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
        raise TypeError(f"SCAN needs an open_clip VisionTransformer CLIP (SIM and CS), got {type(visual).__name__}")
    return len(visual.transformer.resblocks)


def build_scan_segmenter(stage_cfg, embed_dim: int, clip, *, inference: ScanInference,
                         mask_visual: nn.Module | None = None) -> ScanSegmenter:
    """Build a :class:`ScanSegmenter` (seed torch first).

    The segmenter part is built exactly as :func:`ovlab.segmenter.model.build_segmenter` (same
    draws from the torch RNG), then SIM, then the mask-classifying CLIP with the CS source, layers,
    ratio and seed of ``inference``.

    Args:
        stage_cfg: the ``scan`` section (:class:`ovlab.config.scan.ScanStageParams`; uses ``model``
            and ``sim``, the parts that are trained).
        embed_dim: CLIP joint dimension D.
        clip: the :class:`ovlab.clip.ClipModel` (a ViT; frozen): SIM inputs, [CLS] substitutes and,
            without ``mask_visual``, the mask-classifying CLIP.
        inference: the test-time numbers (``stage_cfg.inference_for(dataset)``).
        mask_visual: the mask-classifying ViT (SCAN: the CS-fine-tuned CLIP), or ``None``.

    Raises:
        TypeError: the CLIP is not a plain ViT.
        ValueError: SIM or CS blocks outside the CLIP's depth, or SIM heads not dividing D.
    """
    sim_cfg = stage_cfg.sim
    visual = clip.model.visual
    n_blocks = _vit_blocks(visual)
    base = build_segmenter(stage_cfg.model, embed_dim, clip)
    sim = None
    if sim_cfg.enabled:
        bad = [i for i in sim_cfg.layers if i > n_blocks]
        if bad:
            raise ValueError(f"scan.sim.layers {bad} outside the CLIP's blocks 0..{n_blocks}")
        sim = SemanticIntegrationModule.from_params(sim_cfg, int(visual.class_embedding.shape[-1]), embed_dim)
        if not sim_cfg.use_cls:
            sim.gamma.requires_grad_(False)        # unused without F_CLS: keep it out of the optimiser (and DDP)
    mask_clip = ContextualShiftCLIP(mask_visual if mask_visual is not None else visual,
                                    layers=inference.cs_layers, ratio=inference.cs_ratio, source=inference.cs_source,
                                    original_visual=visual if mask_visual is not None else None,
                                    seed=inference.cs_seed)
    classifier = base.classifier
    mp = stage_cfg.model
    if mp.head == "scan":               # SCAN's shared MLP (defect: GKC's head used to stand in for it)
        classifier = ScanClassifier(mp.hidden_dim, embed_dim, embed_hidden_dim=mp.embed_hidden_dim,
                                    embed_layers=mp.embed_layers, logit_scale_init=mp.logit_scale_init,
                                    learn_logit_scale=mp.learn_logit_scale)
    return ScanSegmenter(base.backbone, base.head, classifier, mp.pixel_mean,
                         mp.pixel_std, sim=sim, clip_visual=visual, mask_clip=mask_clip,
                         clip_mean=clip.mean, clip_std=clip.std, inference=inference, sim_layers=sim_cfg.layers,
                         sim_resize=sim_cfg.resize, name_encoding=getattr(stage_cfg, "name_encoding", "whole"),
                         official_padding=getattr(stage_cfg, "eval_padding", "grey") == "official")


def build_converted_segmenter(arch, load=None, *, inference: ScanInference | None = None) -> ScanSegmenter:
    """The :class:`ScanSegmenter` of an official SCAN architecture (Swin backbone, transformers'
    Mask2Former head, SCAN's shared-MLP head, SIM as the official code, the two CLIP ViTs), with the
    converted weights when ``load`` is given (SCAN §3; yongliu20/SCAN ``scan/ovseg_model.py``).

    Args:
        arch: :class:`ovlab.scan.convert.ScanArchitecture` (or its ``to_dict()``).
        load: a :class:`ovlab.scan.convert.ConvertedScan` or the checkpoint dict it writes
            (``model``, ``clip``, ``original_visual``); ``None`` = random weights from the torch seed.
        inference: test-time settings to build with instead of the checkpoint config's (a grid
            cell's CS source, layers, seed, ratio, thresholds; SCAN Tables 6–8).

    Returns:
        the model in eval mode, the official test-time numbers set (mode ``both``, the config's
        mask threshold, λ, CS layers and ratio, CS source ``cls``, no renormalisation). The full
        open_clip CLIP (text tower + mask-classifying visual) is :attr:`ScanSegmenter.clip_model`.

    Raises:
        RuntimeError: the weights do not fit (strict ``load_state_dict``).
    """
    import copy

    import open_clip

    from ovlab.clip.crops import CLIP_MEAN, CLIP_STD
    from ovlab.segmenter.mask2former import Mask2FormerHead, mask2former_config
    from ovlab.segmenter.swin import SwinBackbone

    a = arch if isinstance(arch, dict) else arch.to_dict()
    backbone = SwinBackbone(**a["swin"], window_padding="mask2former")
    cfg = mask2former_config(hidden_dim=a["hidden_dim"], mask_dim=a["mask_dim"], num_queries=a["num_queries"],
                             decoder_layers=a["decoder_layers"], encoder_layers=a["encoder_layers"],
                             heads=a["decoder_heads"], ffn_dim=a["ffn_dim"], encoder_ffn_dim=a["encoder_ffn_dim"])
    head = Mask2FormerHead(cfg, backbone.channels)
    classifier = ScanClassifier(a["hidden_dim"], a["embed_dim"], embed_hidden_dim=a["embed_hidden_dim"],
                                embed_layers=a["embed_layers"], logit_scale_init=100.0, learn_logit_scale=False)
    s = a["sim"]
    sim = SemanticIntegrationModule(s["clip_width"], a["embed_dim"], s["sigmas"], layers=s["layers"],
                                    resize="nearest", lfe="code", shared_lfe=True,
                                    cross_attention_layers=s["cross_attention_layers"], cross_attention_residual=True,
                                    heads=s["heads"], encoder_layers=s["encoder_layers"], encoder_ff=s["encoder_ff"],
                                    encoder_dropout=0.1, query_interaction=False, normalize_cls=True, gamma_init=0.1)
    c = a["clip"]
    clip = open_clip.model.CLIP(c["embed_dim"], dict(c["vision_cfg"]), dict(c["text_cfg"]), quick_gelu=False)
    original = copy.deepcopy(clip.visual)
    if load is not None:
        ck = load if isinstance(load, dict) else load.checkpoint()
        clip.load_state_dict(ck["clip"], strict=True)
        original.load_state_dict(ck["original_visual"], strict=True)
    for m in (clip, original):
        m.eval().requires_grad_(False)
    if inference is None:
        inference = ScanInference(benchmark=None, mode="both", mask_threshold=float(a["mask_threshold"]),
                                  clip_weight=float(a["clip_weight"]), renormalize=False, clip_logit_scale=100.0,
                                  cs_source="cls", cs_layers=tuple(a["cs_layers"]), cs_ratio=float(a["cs_ratio"]),
                                  cs_seed=0)
    mask_clip = ContextualShiftCLIP(clip.visual, layers=inference.cs_layers, ratio=inference.cs_ratio,
                                    source="none" if inference.cs_source == "none" else inference.cs_source,
                                    original_visual=original, seed=inference.cs_seed)
    seg = ScanSegmenter(backbone, head, classifier, [v / 255.0 for v in a["pixel_mean"]],
                        [v / 255.0 for v in a["pixel_std"]], sim=sim, clip_visual=original, mask_clip=mask_clip,
                        clip_mean=CLIP_MEAN, clip_std=CLIP_STD, inference=inference, sim_layers=s["layers"],
                        sim_resize="nearest", name_encoding="whole", official_padding=True)
    seg._frozen["clip"] = clip
    if load is not None:
        seg.load_state_dict(ck["model"], strict=True)
    return seg.eval()
