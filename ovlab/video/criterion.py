"""Training objective of the video model: Mask2Former losses over space-time tubes, with GKC's TD and
KD applied per frame instance (GKC §3.4, §4.4, Tab. 3; GKC's release has no video model, so this
follows the paper and Video Mask2Former).

**Mask losses.** The image :class:`ovlab.segmenter.criterion.SetCriterion` runs unchanged on the clip
presented as one tall image: prediction masks (Q, T, h, w) become (Q, T·h, w) and target tubes
(N, T, S, S) become (N, T·S, S) (frames stacked along the height). The Hungarian matcher therefore
matches each query to a whole instance tube, and its uniformly random points and the loss's
importance-sampled points spread over the whole space-time volume — as Video Mask2Former samples
points over the tube (VMF samples the same P points in every frame and averages per frame; here P
points fall anywhere in the T frames, and the dice loss is one dice over the tube). A query has one
class prediction per clip, so the CE is per clip instance.

**Text diversification** (``gkc.td``, :mod:`ovlab.gkc.diversify`, GKC §3.1; the
:class:`~ovlab.gkc.diversify.TextDiversification` built once from the params): the model scores the training
vocabulary's names and every synonym of every training class (WordNet sets,
:mod:`ovlab.vocab.auto_synonyms`); matching and the plain CE use the class logits of the vocabulary's
names (max over a class's ``_or_`` parts, as at evaluation), the TD CE the synonyms' logits. ``random`` draws one name per clip instance with the synonym score of
GKC Eq. 1, computed from the frozen CLIP features of the instance's frames (the KD teacher's
features, averaged over the frames in which the instance is visible and kept for KD; an instance
with none gets its canonical name) at CLIP's temperature 1 / logit scale.

**Knowledge distillation** (``gkc.kd``, :mod:`ovlab.gkc.distill`, GKC §3.2, Eq. 2–3; the
:class:`~ovlab.gkc.distill.Distillation` built once from the params): every frame in which a GT
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
from ovlab.gkc.distill import build_distillation
from ovlab.gkc.diversify import build_text_diversification
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
        kd = self.gkc.kd

        def bank(syn):
            groups = [[syn.names[i] for i in syn.class_names(k)] for k in range(syn.num_classes)]
            return build_text_bank(built.clip, groups, cfg.model.templates,
                                   cache_dir=stage.path(stage.base.paths.cache)).embeddings

        # Random TD scores each clip instance from the teacher's features (no score table)
        self.td = build_text_diversification(self.gkc.td, lambda: video_synonyms(stage, vocab), bank)
        self.syn, self.bank = self.td.vocab, self.td.bank
        self.kd = build_distillation(kd)
        self.teacher = None
        if self.kd.enabled or self.td.draws:
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
        plain, names = [], [] if self.td.enabled else None
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
        keep = self.kd.subsample(len(out), generator)
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
        out = []
        for b, labels in enumerate(batch.labels):
            lab = labels.cpu()
            out.append(self.td.draw_names(lab, lambda: self._instance_scores(b, lab, triples, teacher), generator))
        return out

    def _instance_scores(self, b: int, labels: torch.Tensor, triples, teacher) -> list:
        """GKC Eq. 1 synonym scores of clip b's instances from their kept frames' teacher features
        (``None`` for an instance with no kept frame)."""
        scores = []
        for i, k in enumerate(labels.tolist()):
            rows = [r for r, (bb, _, ii) in enumerate(triples) if bb == b and ii == i]
            if not rows:
                scores.append(None)
                continue
            feat = teacher[rows].float().mean(0, keepdim=True)
            names = self.bank[list(self.syn.class_names(k))]
            scores.append(synonym_score(feat.cpu(), names, self.temperature)[0])
        return scores

    # ------------------------------------------------------------------------------ forward
    def __call__(self, net, batch, text: torch.Tensor, generator: torch.Generator) -> CriterionOutput:
        td, kd = self.td, self.kd
        bank = torch.cat([text, self.bank.to(text)]) if td.enabled else text
        preds = net(batch.images, bank)
        plain, name_logits = self._split_logits(preds, text.shape[0])
        out = self.criterion([p.stacked() for p in plain], batch.labels, batch.stacked_masks(), generator=generator)
        if not td.enabled and not kd.enabled:
            return out
        triples = self.frame_instances(batch, generator) if self.teacher is not None else []
        teacher = self.teacher_features(batch, triples) if self.teacher is not None else None
        names = self.draw_names(batch, triples, teacher, generator) if td.enabled else None
        columns = td.columns(batch.labels, names)
        deep = self.cfg.loss.deep_supervision
        layers = preds if deep else preds[-1:]
        last = len(layers) - 1
        model = _net(net)
        for li, pred in enumerate(layers):
            suffix = "" if li == last else f"_{li}"
            matches, targets = out.matches[li], out.class_targets[li]
            if td.enabled:
                terms = td.loss(name_logits[li if deep else -1], targets,
                                name_targets=td.query_name_targets(targets, matches, names), columns=columns,
                                void_weight=self.cfg.loss.void_weight)
                if "loss_syn" not in terms:  # paper: the diversified CE replaces the plain one
                    out.terms["loss_ce" + suffix] = terms["loss_ce"]
                else:  # code (keep_plain_ce): the criterion's plain CE stays, the synonym CE is added
                    out.add("loss_syn" + suffix, terms["loss_syn"], self.weights["loss_syn"])
            if kd.enabled:
                layer = li if deep else len(preds) - 1
                for name, value in self._kd_terms(model, layer, pred, matches, triples, teacher, names,
                                                  text, batch).items():
                    out.add(name + suffix, value, self.weights[name])
        return out

    def _kd_terms(self, model, layer, pred, matches, triples, teacher, names, text, batch) -> dict[str, torch.Tensor]:
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
        return self.kd.loss(v, teacher[rows].to(device), ids, text=tx.to(device), text_scale=model.distill.text_scale)
