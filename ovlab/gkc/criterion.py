"""GKC's training criterion (GKC Eq. 4): the Mask2Former set criterion plus the calibration terms.

:class:`GkcObjective` adds to the baseline (:class:`ovlab.segmenter.objective.MaskObjective`), from the
same Hungarian matches (GKC §3.3; GKC `mask2former/maskformer_model_voca_dense_kd_syn.py`):

- **text diversification** (``gkc.td``; :mod:`ovlab.gkc.diversify`, GKC §3.1): a
  :class:`~ovlab.gkc.diversify.TextDiversification` built once from the params. The model scores
  the bank of every synonym of every training class (void last); matching and the plain CE use the
  canonical names' columns; ``random`` draws one name per GT segment (synonym score as probability,
  or uniform above a threshold) and builds GKC's per-image columns; ``group_avg`` / ``group_max``
  reduce each class's names' logits. Paper: the diversified CE replaces ``loss_ce``; code
  (``keep_plain_ce``): it is added as ``loss_syn``.
- **knowledge distillation** (``gkc.kd``; :mod:`ovlab.gkc.distill`, :mod:`ovlab.gkc.distill_heads`,
  GKC §3.2, Eq. 2–3): a :class:`~ovlab.gkc.distill.Distillation` built once from the params.
  Student = the matched queries' projected prior/post embedding, teacher = the frozen CLIP's
  feature of the GT instance, text = the instance's (drawn) name; pairs within an image; at most
  ``max_instances`` instances per batch (one subset shared by every decoder prediction).
- **grounding** (``gkc.grounding``; :mod:`ovlab.gkc.grounding`, GKC §3.3 L_G): caption nouns vs
  matched query embeddings, in-batch negatives.

Every term is applied on every decoder prediction (suffix ``_l`` for auxiliary ones; GKC's
``dense_list``) with the weights of ``loss`` (mask, dice, CE) and ``gkc.weights`` (syn, grounding,
KD). Random draws come from the per-iteration generator, so resume stays exact.

Citations "GKC `path` Lnn" point into the official GKC code, github.com/yongliu20/GKC at commit
21313c8 (file and line); "GKC Eq. n / §n / Tab. n" into the paper (Han et al., ICCV 2023).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ovlab.clip.text import build_text_bank
from ovlab.segmenter.criterion import CriterionOutput, SetCriterion
from ovlab.segmenter.objective import MaskObjective, _net, class_predictions, first_name_rows
from ovlab.gkc.distill import KD_MODES, build_distillation
from ovlab.gkc.diversify import TD_STRATEGIES, build_text_diversification, canonical_logits
from ovlab.gkc.grounding import caption_nouns, grounding_loss, pad_embeddings, sample_caption
from ovlab.gkc.distill_heads import ClipTeacher
from ovlab.data.names import normalize_class_name
from ovlab.vocab.synonym_vocab import load_synonym_scores, load_synonym_vocabulary


def gkc_enabled(gkc) -> bool:
    """True when a ``tgkd.gkc`` section asks for any GKC term (TD, KD or grounding)."""
    return gkc is not None and (TD_STRATEGIES[gkc.td.strategy].enabled or KD_MODES[gkc.kd.mode].enabled
                                or gkc.grounding.enabled)


class GkcObjective:
    """Mask2Former losses + GKC's TD, KD and grounding (GKC Eq. 4, §3.1–3.3).

    Args:
        stage: the ``tgkd`` :class:`ovlab.config.StageParams`.
        clip: the frozen CLIP (text encoder; ResNet teacher for KD).
        vocab: the training :class:`ovlab.segmenter.vocabulary.Vocabulary` (K classes).
        model: the segmenter; with KD it carries a ``distill`` :class:`ovlab.gkc.distill_heads.DistillHead`.

    Attributes:
        td: the :class:`ovlab.gkc.diversify.TextDiversification` of ``gkc.td`` (``syn``, ``bank``,
            ``scores``: its vocabulary, text bank and score table, ``None`` where unused).
        kd: the :class:`ovlab.gkc.distill.Distillation` of ``gkc.kd``.

    Raises:
        FileNotFoundError: the synonyms / synonym-score files of ``gkc.td`` are missing (run the
            ``synonyms`` / ``synonym_score`` stages).
        ValueError: a training class is missing from the synonym table.
        TypeError: KD with a non-ResNet CLIP.
    """

    def __init__(self, stage, clip, vocab, model):
        cfg = stage.cfg
        self.cfg, self.gkc, self.clip, self.vocab = cfg, cfg.gkc, clip, vocab
        self.seed = stage.base.seed
        self.criterion = SetCriterion(cfg.loss)
        self.weights = self.gkc.weights.resolve()
        td, kd = self.gkc.td, self.gkc.kd
        cache = stage.path(stage.base.paths.cache)

        def synonyms():
            path = stage.path(td.synonyms)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: synonym table for tgkd.gkc.td not found (run `dvc repro synonyms`)")
            return load_synonym_vocabulary(path, [normalize_class_name(c) for c in vocab.classes])

        def bank(syn):
            groups = [[syn.names[i] for i in syn.class_names(k)] for k in range(syn.num_classes)]
            return build_text_bank(clip, groups, cfg.model.templates, cache_dir=cache).embeddings

        def scores(syn):
            spath = stage.path(td.scores)
            if not spath.is_file():
                raise FileNotFoundError(f"{spath}: synonym scores for tgkd.gkc.td not found "
                                        "(run `dvc repro synonym_score`)")
            return load_synonym_scores(spath, syn)

        self.td = build_text_diversification(td, synonyms, bank, scores)
        self.syn, self.bank = self.td.vocab, self.td.bank
        self.scores = self.td.scores
        self.kd = build_distillation(kd)
        self.teacher = None
        if self.kd.enabled:
            self.teacher = ClipTeacher(clip, kd.teacher, kd.spatial_pool, kd.teacher_input, kd.teacher_eval)
        self._noun_cache: dict[str, torch.Tensor] = {}
        self.name_rows = first_name_rows(vocab)  # KD without TD: a class's text is its first name

    # ------------------------------------------------------------------------------------- text
    def text(self, default: torch.Tensor) -> torch.Tensor:
        """The embeddings the model scores during training: every synonym (TD) or the K names."""
        return self.td.training_text(default)

    def _segment_scores(self, batch, b: int, n: int) -> list:
        """The synonym scores of image b's n GT segments (``None`` where unscored)."""
        seg = batch.sources[b].segment_ids if batch.sources else None
        return [self.scores.get(batch.image_ids[b], int(s)) if seg is not None else None
                for s in (seg.tolist() if seg is not None else [None] * n)]

    def _draw_names(self, batch, generator) -> list[torch.Tensor]:
        """Per image, (N_b,) name index of each GT segment (canonical unless ``random``)."""
        out = []
        for b, labels in enumerate(batch.labels):
            lab = labels.cpu()
            out.append(self.td.draw_names(lab, lambda: self._segment_scores(batch, b, len(lab)), generator))
        return out

    # ---------------------------------------------------------------------------------- forward
    def __call__(self, net, batch, text: torch.Tensor, generator: torch.Generator) -> CriterionOutput:
        td, kd = self.td, self.kd
        preds = net(batch.images, self.text(text))
        plain = ([replace(p, logits=canonical_logits(p.logits, self.syn)) for p in preds] if td.enabled
                 else class_predictions(preds, self.vocab))
        out = self.criterion(plain, batch.labels, batch.masks, generator=generator)
        layers = preds if self.cfg.loss.deep_supervision else preds[-1:]
        last = len(layers) - 1
        names = self._draw_names(batch, generator) if td.enabled else None
        columns = td.columns(batch.labels, names)
        kd_keep = self._kd_subset(batch, generator) if kd.enabled else None
        teacher = self.teacher(batch, kd_keep) if kd_keep is not None else None
        words = self._caption_words(batch) if self.gkc.grounding.enabled else None
        model = _net(net)
        for li, pred in enumerate(layers):
            suffix = "" if li == last else f"_{li}"
            matches, targets = out.matches[li], out.class_targets[li]
            if td.enabled:
                terms = td.loss(pred.logits, targets, name_targets=td.query_name_targets(targets, matches, names),
                                columns=columns, void_weight=self.cfg.loss.void_weight)
                out.terms["loss_ce" + suffix] = terms["loss_ce"]
                if "loss_syn" in terms:
                    out.add("loss_syn" + suffix, terms["loss_syn"], self.weights["loss_syn"])
            if kd_keep is not None:
                layer = li if self.cfg.loss.deep_supervision else len(preds) - 1  # its own KD projection
                for name, value in self._kd_terms(model, layer, pred, matches, kd_keep, teacher, names, text,
                                                  batch).items():
                    out.add(name + suffix, value, self.weights[name])
            if words is not None:
                out.add("loss_grounding" + suffix, self._grounding(pred, matches, words, model, generator),
                        self.weights["loss_grounding"])
        return out

    # ------------------------------------------------------------------------------------ KD
    def _kd_subset(self, batch, generator) -> list[torch.Tensor]:
        """GT instances kept for KD per image: a random subset of at most ``max_instances`` over the batch."""
        counts = [int(lab.numel()) for lab in batch.labels]
        keep = self.kd.subsample(sum(counts), generator)
        flat = torch.arange(sum(counts)) if keep is None else keep
        starts = np.cumsum([0] + counts)
        return [flat[(flat >= starts[b]) & (flat < starts[b + 1])] - int(starts[b]) for b in range(len(counts))]

    def _kd_terms(self, model, li, pred, matches, keep, teacher, names, text, batch) -> dict[str, torch.Tensor]:
        students, texts, ids = [], [], []
        for b, (q, t) in enumerate(matches):
            if keep[b].numel() == 0:
                continue
            query_of = torch.full((int(batch.labels[b].numel()),), -1, dtype=torch.long)
            query_of[t.cpu()] = q.cpu()
            qs = query_of[keep[b]].to(pred.prior.device)
            students.append(model.distill(li, pred.prior[b, qs], pred.embedding[b, qs]))
            if names is not None:
                texts.append(self.bank[names[b][keep[b]]])
            else:
                texts.append(text.detach().cpu()[self.name_rows[batch.labels[b].cpu()[keep[b]]]])
            ids.append(torch.full((keep[b].numel(),), b, dtype=torch.long))
        device = pred.prior.device
        if not students:
            z = (pred.prior.sum() * 0.0 + model.distill.text_scale * 0.0)
            return {"loss_kd": z}
        v = torch.cat(students)
        tx = torch.cat(texts).to(device)
        return self.kd.loss(v, teacher.to(device), torch.cat(ids), text=tx, text_scale=model.distill.text_scale)

    # ------------------------------------------------------------------------------ grounding
    def _noun_embeddings(self, nouns: list[str]) -> torch.Tensor:
        for n in dict.fromkeys(nouns):
            if n not in self._noun_cache:  # one noun per forward: the same floats whatever the batch (exact resume)
                self._noun_cache[n] = self.clip.encode_text([n], normalize=True).cpu()[0]
        return torch.stack([self._noun_cache[n] for n in nouns]) if nouns else torch.zeros(0, self.bank_dim)

    @property
    def bank_dim(self) -> int:
        return int(self.clip.model.text_projection.shape[1])

    def _caption_words(self, batch):
        """(B, L, D) caption-noun embeddings and (B, L) mask; nouns drawn per (seed, iteration, slot)."""
        g = self.gkc.grounding
        items = []
        for b, caps in enumerate(batch.captions):
            slot = batch.slots[b] if batch.slots else b
            rng = np.random.default_rng([self.seed, batch.iteration, slot, 7])
            nouns = caption_nouns(sample_caption(caps, rng), rng, g.keep_prob, g.max_words) if caps else []
            items.append(self._noun_embeddings(nouns))
        words, mask = pad_embeddings(items, g.max_words)
        return words.to(batch.images.device), mask.to(batch.images.device)

    def _grounding(self, pred, matches, words, model, generator) -> torch.Tensor:
        g = self.gkc.grounding
        regions = []
        for b, (q, _) in enumerate(matches):
            q = q.to(pred.embedding.device)
            if q.numel() > g.max_regions:
                q = q[torch.randperm(q.numel(), generator=generator)[: g.max_regions].to(q.device)]
            regions.append(pred.embedding[b, q])
        reg, rmask = pad_embeddings(regions, g.max_regions)
        return grounding_loss(words[0], words[1], reg, rmask.to(reg.device), model.classifier.tau, validity=g.validity)


def build_objective(stage, built, vocab):
    """:class:`GkcObjective` when ``stage.cfg.gkc`` asks for a GKC term, else :class:`MaskObjective`."""
    gkc = getattr(stage.cfg, "gkc", None)
    if gkc_enabled(gkc):
        return GkcObjective(stage, built.clip, vocab, built.model)
    return MaskObjective(stage.cfg.loss, vocab)
