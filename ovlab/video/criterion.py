"""Training objective of the video model: Mask2Former losses over space-time tubes, with GKC's TD and
KD applied per frame instance (GKC §3.4, §4.4 Tab. 3; spec §6.4).

**Mask losses.** The image :class:`ovlab.segmenter.criterion.SetCriterion` runs unchanged on the clip
presented as one tall image: prediction masks (Q, T, h, w) become (Q, T·h, w) and target tubes
(N, T, S, S) become (N, T·S, S) (frames stacked along the height). The Hungarian matcher therefore
matches each query to a whole instance tube, and its uniformly random points and the loss's
importance-sampled points spread over the whole space-time volume — as Video Mask2Former samples
points over the tube (VMF samples the same P points in every frame and averages per frame; here P
points fall anywhere in the T frames, and the dice loss is one dice over the tube). A query has one
class prediction per clip, so the CE is per clip instance.

**Text diversification** (``gkc.td``, :mod:`ovlab.gkc.diversify`): the model scores the training
vocabulary's names and every synonym of every training class (WordNet sets,
:mod:`ovlab.vocab.auto_synonyms`); matching and the plain CE use the class logits of the vocabulary's
names (max over a class's ``_or_`` parts, as at evaluation), the TD CE the synonyms' logits. ``random`` draws one name per clip instance with the synonym score of
GKC Eq. 1, computed from the frozen CLIP features of the instance's frames (the KD teacher's
features, averaged over the frames in which the instance is visible and kept for KD; an instance
with none gets its canonical name) at CLIP's temperature 1 / logit scale.

**Knowledge distillation** (``gkc.kd``, :mod:`ovlab.gkc.distill`): every frame in which a GT
instance is visible is one *frame instance*: its teacher feature r is the frozen CLIP's feature of
that frame masked by the instance's mask (:class:`ovlab.gkc.distill_heads.ClipTeacher`), its student v
is the matched query's embedding (one per clip, shared by the instance's frames, through the
per-layer student projection), its text t the instance's class name (or drawn synonym). Pairs
(i, j) of the text-guided form run over instances of the **same frame**. At most
``kd.max_instances`` frame instances per batch, one random subset for every decoder prediction.

Every term is applied on every decoder prediction (suffix ``_l``), with the weights of ``loss`` and
``gkc.weights``. Random draws come from the per-iteration generator, so resume stays exact.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch.nn.parallel import DistributedDataParallel

from ovlab.gkc.synonym_score import synonym_score
from ovlab.clip.text import build_text_bank
from ovlab.segmenter.criterion import CriterionOutput, SetCriterion
from ovlab.gkc.distill import distill_loss, subsample_instances
from ovlab.gkc.diversify import batch_columns, classification_loss, image_columns, sample_synonyms
from ovlab.gkc.distill_heads import ClipTeacher
from ovlab.segmenter.inference import names_to_classes
from ovlab.vocab.auto_synonyms import cached_auto_synonym_table, canonical_name
from ovlab.vocab.synonym_vocab import SynonymVocabulary, load_synonym_vocabulary


def _net(model):
    return model.module if isinstance(model, DistributedDataParallel) else model


def first_names(class_index: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K,) int64: the index of each class's first name in a (M,) name → class map."""
    ci = class_index.cpu()
    first = torch.full((num_classes,), -1, dtype=torch.long)
    for m in range(ci.numel() - 1, -1, -1):
        first[int(ci[m])] = m
    return first


def video_synonyms(stage, vocab) -> SynonymVocabulary:
    """The TD synonym vocabulary of the training classes (``gkc.td.synonyms``: ``wordnet`` or a JSON table).

    Classes are keyed by their canonical name (:func:`ovlab.vocab.auto_synonyms.canonical_name`).

    Raises:
        FileNotFoundError / ValueError: the JSON is missing or lacks a class.
        WordNetNotFoundError: ``wordnet`` without WordNet.
    """
    src = stage.cfg.gkc.td.synonyms
    classes = [canonical_name(c) for c in vocab.classes]
    if src == "wordnet":
        table = cached_auto_synonym_table(vocab.classes, stage.path(stage.base.paths.cache))
        return SynonymVocabulary.from_table(table, classes)
    return load_synonym_vocabulary(stage.path(src), classes)


class VideoObjective:
    """Video Mask2Former losses (+ GKC TD / KD per frame instance) of a clip batch (module docstring).

    Args:
        stage: the ``video`` :class:`ovlab.config.StageParams` (one Table 3 row).
        built: :class:`ovlab.segmenter.build.Built` (its CLIP; ``model.distill`` when KD is on).
        vocab: the training :class:`ovlab.segmenter.vocabulary.Vocabulary` (K classes, M ≥ K names).

    Call: ``objective(net, batch, text, generator)`` with a :class:`ovlab.video.data.ClipBatch`
    and the (M, D) name embeddings → :class:`ovlab.segmenter.criterion.CriterionOutput`.

    Raises:
        ValueError: grounding enabled (VIPSeg has no captions).
        TypeError: KD or Random TD with a non-ResNet CLIP (the teacher).
    """

    def __init__(self, stage, built, vocab):
        cfg = stage.cfg
        self.cfg, self.gkc, self.clip = cfg, cfg.gkc, built.clip
        if self.gkc.grounding.enabled:
            raise ValueError("video.gkc.grounding.enabled: VIPSeg has no captions to ground")
        self.criterion = SetCriterion(cfg.loss)
        self.weights = self.gkc.weights.resolve()
        self.num_classes = len(vocab)
        self.class_index = vocab.class_index.cpu()
        self.first = first_names(self.class_index, self.num_classes)
        td, kd = self.gkc.td, self.gkc.kd
        self.syn, self.bank = None, None
        if td.strategy != "none":
            self.syn = video_synonyms(stage, vocab)
            groups = [[self.syn.names[i] for i in self.syn.class_names(k)] for k in range(self.syn.num_classes)]
            self.bank = build_text_bank(built.clip, groups, cfg.model.templates,
                                        cache_dir=stage.path(stage.base.paths.cache)).embeddings
        self.teacher = None
        if kd.mode != "none" or td.strategy == "random":
            self.teacher = ClipTeacher(built.clip, kd.teacher, kd.spatial_pool, kd.teacher_input, kd.teacher_eval)
        self.temperature = 1.0 / float(built.clip.logit_scale)

    # ------------------------------------------------------------------------------ helpers
    def _split_logits(self, preds, num_names: int):
        """(class logits (K + 1) of every prediction, TD name logits (N + 1) or ``None``).

        The model scores the training vocabulary's M names, then (TD) the N synonym names, void last.
        Class logits — what matching and the plain CE use — are the max over each class's own names
        (its ``_or_`` parts, as at evaluation), so the plain terms are the same with and without TD.
        """
        ci = self.class_index.to(preds[-1].logits.device)
        plain, names = [], None if self.syn is None else []
        for p in preds:
            void = p.logits[..., -1:]
            plain.append(replace(p, logits=names_to_classes(torch.cat([p.logits[..., :num_names], void], -1), ci,
                                                            self.num_classes)))
            if names is not None:
                names.append(p.logits[..., num_names:])
        return plain, names

    def frame_instances(self, batch, generator) -> list[tuple[int, int, int]]:
        """The (clip b, frame t, instance i) triples kept for KD/TD, in (b, t, i) order: every frame
        in which an instance is visible, at most ``kd.max_instances`` of them (random subset)."""
        present = batch.present()
        out = [(b, t, i) for b, p in enumerate(present) for t in range(p.shape[1]) for i in range(p.shape[0])
               if bool(p[i, t])]
        keep = subsample_instances(len(out), self.gkc.kd.max_instances, generator)
        return out if keep is None else [out[k] for k in keep.tolist()]

    def teacher_features(self, batch, triples) -> torch.Tensor:
        """(len(triples), D) unit teacher features, row k = frame instance ``triples[k]``."""
        T = batch.num_frames
        per_frame = [[] for _ in range(len(batch.labels) * T)]
        for b, t, i in triples:
            per_frame[b * T + t].append(i)
        return self.teacher(batch.frames(), [torch.tensor(x, dtype=torch.long) for x in per_frame])

    def draw_names(self, batch, triples, teacher, generator) -> list[torch.Tensor]:
        """Per clip, (N_b,) name index of each instance: canonical, or drawn (Random TD, GKC Eq. 1)."""
        td = self.gkc.td
        out = []
        for b, labels in enumerate(batch.labels):
            lab = labels.cpu()
            if td.strategy != "random":
                out.append(torch.tensor([self.syn.canonical_index[k] for k in lab.tolist()], dtype=torch.long))
                continue
            scores = []
            for i, k in enumerate(lab.tolist()):
                rows = [r for r, (bb, _, ii) in enumerate(triples) if bb == b and ii == i]
                if not rows:
                    scores.append(None)
                    continue
                feat = teacher[rows].float().mean(0, keepdim=True)
                names = self.bank[list(self.syn.class_names(k))]
                scores.append(synonym_score(feat.cpu(), names, self.temperature)[0])
            out.append(sample_synonyms(lab, scores, self.syn, mode=td.random_mode, threshold=td.threshold,
                                       fallback=td.fallback, generator=generator))
        return out

    # ------------------------------------------------------------------------------ forward
    def __call__(self, net, batch, text: torch.Tensor, generator: torch.Generator) -> CriterionOutput:
        td, kd = self.gkc.td, self.gkc.kd
        bank = torch.cat([text, self.bank.to(text)]) if self.bank is not None else text
        preds = net(batch.images, bank)
        plain, name_logits = self._split_logits(preds, text.shape[0])
        out = self.criterion([p.stacked() for p in plain], batch.labels, batch.stacked_masks(), generator=generator)
        if self.syn is None and kd.mode == "none":
            return out
        triples = self.frame_instances(batch, generator) if self.teacher is not None else []
        teacher = self.teacher_features(batch, triples) if self.teacher is not None else None
        names = self.draw_names(batch, triples, teacher, generator) if self.syn is not None else None
        columns = None
        if td.strategy == "random":
            columns = batch_columns([image_columns(batch.labels[b].cpu(), names[b], self.syn)
                                     for b in range(len(batch.labels))])
        deep = self.cfg.loss.deep_supervision
        layers = preds if deep else preds[-1:]
        last = len(layers) - 1
        model = _net(net)
        for li, pred in enumerate(layers):
            suffix = "" if li == last else f"_{li}"
            matches, targets = out.matches[li], out.class_targets[li]
            if self.syn is not None:
                name_targets = None
                if columns is not None:
                    name_targets = torch.zeros_like(targets)
                    for b, (q, t) in enumerate(matches):
                        name_targets[b, q.to(targets.device)] = names[b][t.cpu()].to(targets.device)
                terms = classification_loss(name_logits[li if deep else -1], targets, self.syn, td.strategy,
                                            name_targets=name_targets,
                                            columns=columns, keep_plain_ce=td.keep_plain_ce,
                                            void_weight=self.cfg.loss.void_weight)
                if "loss_syn" not in terms:  # paper: the diversified CE replaces the plain one
                    out.terms["loss_ce" + suffix] = terms["loss_ce"]
                else:  # code (keep_plain_ce): the criterion's plain CE stays, the synonym CE is added
                    out.add("loss_syn" + suffix, terms["loss_syn"], self.weights["loss_syn"])
            if kd.mode != "none":
                layer = li if deep else len(preds) - 1
                for name, value in self._kd_terms(model, layer, pred, matches, triples, teacher, names,
                                                  text, batch).items():
                    out.add(name + suffix, value, self.weights[name])
        return out

    def _kd_terms(self, model, layer, pred, matches, triples, teacher, names, text, batch) -> dict[str, torch.Tensor]:
        kd = self.gkc.kd
        device = pred.prior.device
        query_of = []
        for b, (q, t) in enumerate(matches):
            qo = torch.full((int(batch.labels[b].numel()),), -1, dtype=torch.long)
            qo[t.cpu()] = q.cpu()
            query_of.append(qo)
        rows = [k for k, (b, _, i) in enumerate(triples) if int(query_of[b][i]) >= 0]
        if not rows:
            return {"loss_kd": pred.prior.sum() * 0.0 + model.distill.text_scale * 0.0}
        bs = torch.tensor([triples[k][0] for k in rows])
        qs = torch.tensor([int(query_of[triples[k][0]][triples[k][2]]) for k in rows])
        v = model.distill(layer, pred.prior[bs.to(device), qs.to(device)], pred.embedding[bs.to(device), qs.to(device)])
        if names is not None:
            tx = self.bank[torch.stack([names[triples[k][0]][triples[k][2]] for k in rows])]
        else:
            cls = torch.stack([batch.labels[triples[k][0]][triples[k][2]].cpu() for k in rows])
            tx = text.detach().cpu()[self.first[cls]]
        T = batch.num_frames
        ids = torch.tensor([triples[k][0] * T + triples[k][1] for k in rows])
        return distill_loss(kd.mode, v, teacher[rows].to(device), ids, text=tx.to(device), form=kd.form,
                            text_scale=model.distill.text_scale, max_instances=None, separate=kd.separate_text_kd)
