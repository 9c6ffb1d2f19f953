"""GKC's training criterion (GKC Eq. 4): the Mask2Former set criterion plus the calibration terms.

:class:`GkcObjective` adds to the baseline (:class:`ovlab.segmenter.objective.MaskObjective`), from the
same Hungarian matches (GKC §3.3; GKC `mask2former/maskformer_model_voca_dense_kd_syn.py`):

- **text diversification** (``gkc.td``; :mod:`ovlab.gkc.diversify`, GKC §3.1): a
  :class:`~ovlab.gkc.diversify.TextDiversification` built once from the params. The model scores
  the bank of every synonym of every training class (void last); matching and the plain CE use the
  canonical names' columns; ``random`` draws one name per GT segment (synonym score as probability,
  or uniform above a threshold) and builds GKC's per-image columns; ``group_avg`` / ``group_max``
  reduce each class's names' logits. Paper: the diversified CE replaces ``loss_ce``; code
  (``keep_plain_ce``): it is added as ``loss_syn``, with a region dropout drawn of its own.
- **knowledge distillation** (``gkc.kd``; :mod:`ovlab.gkc.distill`, :mod:`ovlab.gkc.distill_heads`,
  GKC §3.2, Eq. 2–3): a :class:`~ovlab.gkc.distill.Distillation` built once from the params.
  Student = the matched queries' projected prior/post embedding, teacher = the frozen CLIP's
  feature of the GT instance, text = the instance's (drawn) name; pairs within an image; the
  instances are the final prediction's matched ones (unmatched ground truth has no query and is
  never distilled), at most ``max_instances`` per batch (one subset shared by every decoder
  prediction, each of which distils those it matched itself: :func:`matched_kd_rows`).
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
from ovlab.segmenter.class_loss import query_targets
from ovlab.segmenter.criterion import CriterionOutput, SetCriterion
from ovlab.segmenter.objective import MaskObjective, _net, class_predictions, first_name_rows
from ovlab.gkc.distill import KD_MODES, build_distillation
from ovlab.gkc.diversify import (TD_STRATEGIES, build_text_diversification, canonical_logits,
                                 training_synonym_scores)
from ovlab.gkc.grounding import caption_nouns, grounding_loss, pad_embeddings, sample_caption
from ovlab.gkc.distill_heads import ClipTeacher
from ovlab.data.names import normalize_class_name
from ovlab.vocab.synonym_vocab import load_synonym_vocabulary


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
        ValueError: a training class is missing from the synonym table, or the score table has a
            segment of a class the synonym table lacks (segments of its classes outside the
            training vocabulary are skipped: :func:`ovlab.gkc.diversify.training_synonym_scores`).
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
            return training_synonym_scores(spath, stage.path(td.synonyms), syn)

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
        kd_keep = self._kd_subset(out.matches[-1], generator) if kd.enabled else None
        teacher = self.teacher(batch, kd_keep) if kd_keep is not None else None
        words = self._caption_words(batch) if self.gkc.grounding.enabled else None
        model = _net(net)
        for li, pred in enumerate(layers):
            suffix = "" if li == last else f"_{li}"
            matches, targets = out.matches[li], out.class_targets[li]
            if td.enabled:
                if td.keep_plain_ce:  # the synonym CE draws its own region dropout (GKC ``loss_syn_label``)
                    targets = self._syn_targets(out, li, pred, batch, generator)
                terms = td.loss(pred.logits, targets, name_targets=td.query_name_targets(targets, matches, names),
                                columns=columns, void_weight=self.cfg.loss.void_weight)
                if td.keep_plain_ce:
                    out.add("loss_syn" + suffix, terms["loss_syn"], self.weights["loss_syn"])
                else:
                    out.terms["loss_ce" + suffix] = terms["loss_ce"]
            if kd_keep is not None:
                layer = li if self.cfg.loss.deep_supervision else len(preds) - 1  # its own KD projection
                for name, value in self._kd_terms(model, layer, pred, matches, kd_keep, teacher, names, text,
                                                  batch).items():
                    out.add(name + suffix, value, self.weights[name])
            if words is not None:
                out.add("loss_grounding" + suffix, self._grounding(pred, matches, words, model, generator),
                        self.weights["loss_grounding"])
        return out

    # ------------------------------------------------------------------------------------ CE
    def _syn_targets(self, out, li: int, pred, batch, generator) -> torch.Tensor:
        """The synonym CE's targets of prediction ``li``: the plain CE's matches with a region dropout
        of their own (GKC draws one per CE call); the plain CE's targets when there is no dropout."""
        p = self.cfg.loss
        if p.region_dropout <= 0:
            return out.class_targets[li]
        return query_targets(pred.logits.shape[1], self.syn.num_classes, out.matches[li], batch.labels,
                             region_dropout=p.region_dropout, generator=generator)

    # ------------------------------------------------------------------------------------ KD
    def _kd_subset(self, matches, generator) -> list[torch.Tensor]:
        """GT instances kept for KD per image: the final prediction's **matched** instances (GKC
        distils the matcher's instances, GKC `mask2former/maskformer_model_voca_dense_kd_syn.py`
        L560–656), a random subset of at most ``max_instances`` over the batch, in GT order."""
        return kd_instances(matches, self.kd.subsample, generator)

    def _kd_terms(self, model, li, pred, matches, keep, teacher, names, text, batch) -> dict[str, torch.Tensor]:
        queries, kept, rows = matched_kd_rows(matches, keep)
        students, texts, ids = [], [], []
        for b, (qs, gts) in enumerate(zip(queries, kept)):
            if gts.numel() == 0:
                continue
            qs = qs.to(pred.prior.device)
            students.append(model.distill(li, pred.prior[b, qs], pred.embedding[b, qs]))
            if names is not None:
                texts.append(self.bank[names[b][gts]])
            else:
                texts.append(text.detach().cpu()[self.name_rows[batch.labels[b].cpu()[gts]]])
            ids.append(torch.full((gts.numel(),), b, dtype=torch.long))
        device = pred.prior.device
        if not students:
            z = (pred.prior.sum() * 0.0 + model.distill.text_scale * 0.0)
            return {"loss_kd": z}
        v = torch.cat(students)
        tx = torch.cat(texts).to(device)
        return self.kd.loss(v, teacher.to(device)[rows.to(device)], torch.cat(ids), text=tx,
                            text_scale=model.distill.text_scale)

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


def kd_instances(matches, subsample, generator=None) -> list[torch.Tensor]:
    """The GT instances distilled in a batch: per image, the matched ones (sorted GT indices), then a
    random subset over the batch (GKC ``KD.MAX_LIST_LEN``).

    Unmatched ground truth (an image with more segments than queries) has no student query and is
    never distilled (GKC distils the matcher's instances only, GKC
    `mask2former/maskformer_model_voca_dense_kd_syn.py` L560–656).

    Args:
        matches: B pairs ``(query_idx, target_idx)`` of the final prediction.
        subsample: ``(n, generator) -> sorted indices | None`` (:meth:`ovlab.gkc.distill.Distillation.subsample`).
        generator: CPU generator of the subset draw.

    Returns:
        B int64 tensors of GT indices, ascending.
    """
    matched = [t.cpu().to(torch.long).sort().values for _, t in matches]
    counts = [int(m.numel()) for m in matched]
    keep = subsample(sum(counts), generator)
    flat = torch.arange(sum(counts)) if keep is None else keep
    starts = np.cumsum([0] + counts)
    return [matched[b][flat[(flat >= starts[b]) & (flat < starts[b + 1])] - int(starts[b])]
            for b in range(len(counts))]


def matched_kd_rows(matches, keep: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Pair one prediction's matches with the instances kept for KD (GKC's ``indice2main``: each
    decoder prediction's query of each kept instance).

    A kept instance that this prediction did not match (possible on an auxiliary prediction when an
    image has more GT segments than queries) is left out of this prediction's KD term, so no
    instance is ever distilled into a query matched to another one.

    Args:
        matches: B pairs ``(query_idx, target_idx)`` of this prediction.
        keep: B tensors of kept GT indices (:func:`kd_instances`); the teacher computed its rows
            for them in image-then-instance order.

    Returns:
        ``(queries, instances, rows)``: B tensors of the student query and GT index of every kept,
        matched instance (in ``keep`` order) and the (Σ,) int64 rows of those instances in the
        teacher's (Σ_b len(keep[b]), D) output.
    """
    queries, instances, rows = [], [], []
    offset = 0
    for (q, t), k in zip(matches, keep):
        query_of = {int(tt): int(qq) for qq, tt in zip(q.tolist(), t.tolist())}
        pos = [j for j, g in enumerate(k.tolist()) if g in query_of]
        queries.append(torch.tensor([query_of[int(k[j])] for j in pos], dtype=torch.long))
        instances.append(k[pos] if pos else k[:0])
        rows.append(torch.tensor(pos, dtype=torch.long) + offset)
        offset += int(k.numel())
    return queries, instances, torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)


def build_objective(stage, built, vocab):
    """:class:`GkcObjective` when ``stage.cfg.gkc`` asks for a GKC term, else :class:`MaskObjective`."""
    gkc = getattr(stage.cfg, "gkc", None)
    if gkc_enabled(gkc):
        return GkcObjective(stage, built.clip, vocab, built.model)
    return MaskObjective(stage.cfg.loss, vocab)
