"""GKC text diversification (TD) on the classification branch (GKC §3.1, Eq. 1, Tab. 7a).

A strategy is an object (:class:`TextDiversification`) built once from the ``gkc.td`` params by
:func:`build_text_diversification`; the objectives call its methods and never look at the strategy
name again. Strategies (training only; inference always uses the canonical names):

- ``none`` (:class:`NoDiversification`): plain CE over the K canonical names + void.
- ``random`` (:class:`RandomDiversification`): each GT segment's name is replaced by one of its
  class's synonyms, drawn (``paper``, GKC §3.1) with probability = its synonym score (GKC Eq. 1)
  renormalised over the class's names, or (``code``, GKC
  `detr_panoptic_caption_syn_kd_dataset_mapper.py` L225–285) uniformly among the names whose score
  exceeds ``threshold`` (0.1). The classifier of an image then scores the image's own columns: the K
  class names with each class's column replaced by the first synonym drawn for it, plus one extra
  column per further distinct synonym of an already-replaced class (:func:`image_columns`). The
  drawn name is also the text target of that segment's text-guided KD (GKC Eq. 3's T(Y_i); in
  GKC's code the per-image column name, GKC `mask2former/maskformer_model_voca_dense_kd_syn.py` L925–952).
- ``group_avg`` / ``group_max`` (:class:`GroupDiversification`): one bank holds every name of every
  class; the class logit is the mean / max of its names' logits, taken on logits **before** the
  softmax (GKC `mask2former/maskformer_model_voca_dense_kd_syn.py` L912–915; GKC Tab. 7a "GroupAvg" /
  "GroupMax").

Logit convention: the model scores every query against the bank of all N vocabulary names plus
the void embedding, **void last**: ``name_logits`` (B, Q, N+1). Every strategy derives its class-space
logits from that tensor (the text encoder is frozen and deterministic, so gathering a name's column
equals encoding it per image as GKC's code does; GKC pads short per-image lists with encoded
all-zero token rows, a quirk: padding here is masked out with ``-inf``).

Loss terms (:meth:`TextDiversification.loss`, :func:`classification_loss`): the paper has one CE
(λ_c = 2, GKC Eq. 4) on the diversified names, returned as ``loss_ce``. GKC's code keeps the
plain-name CE ``loss_ce`` (weight 2) **and** adds the synonym CE ``loss_syn`` (weight 10) on the same
matches (``keep_plain_ce=True``; GKC `mask2former/maskformer_model_voca_dense_kd_syn.py`).

Citations "GKC `path` Lnn" point into the official GKC code, github.com/yongliu20/GKC at commit
21313c8 (file and line); "GKC Eq. n / §n / Tab. n" into the paper (Han et al., ICCV 2023).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from ovlab.vocab.synonym_vocab import SynonymVocabulary
from ovlab.segmenter.class_loss import IGNORE_INDEX, class_loss

STRATEGIES = ("none", "random", "group_avg", "group_max")
RANDOM_MODES = ("paper", "code")
FALLBACKS = ("plain", "argmax")
DEFAULT_THRESHOLD = 0.1
"""GKC `detr_panoptic_caption_syn_kd_dataset_mapper.py` L259: a synonym is a candidate when its score is > 0.1."""


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {choices}, got {value!r}")


# --------------------------------------------------------------------------------------- Random
def _score_probabilities(scores: list[float], threshold: float) -> list[float]:
    """``paper`` rule: P(j) = S_j / Σ S (GKC §3.1: "using the synonym score as the probability")."""
    total = sum(scores)
    return [x / total for x in scores] if total > 0 else [0.0] * len(scores)


def _threshold_candidates(scores: list[float], threshold: float) -> list[float]:
    """``code`` rule: uniform over {j : S_j > threshold} (GKC `detr_panoptic_caption_syn_kd_dataset_mapper.py` L259)."""
    return [1.0 if x > threshold else 0.0 for x in scores]


def _fallback_plain(scores: list[float]) -> int:
    return 0


def _fallback_argmax(scores: list[float]) -> int:
    return max(range(len(scores)), key=lambda j: (scores[j], -j))


DrawRule = Callable[[list[float], float], list[float]]
FallbackRule = Callable[[list[float]], int]
_DRAW_RULES: dict[str, DrawRule] = {"paper": _score_probabilities, "code": _threshold_candidates}
_FALLBACK_RULES: dict[str, FallbackRule] = {"plain": _fallback_plain, "argmax": _fallback_argmax}


def sample_synonyms(
    classes: torch.Tensor | Sequence[int],
    scores: Sequence[torch.Tensor | Sequence[float] | None],
    vocab: SynonymVocabulary,
    *,
    mode: str = "paper",
    threshold: float = DEFAULT_THRESHOLD,
    fallback: str = "plain",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one name per GT segment (GKC Random TD: GKC §3.1 and Eq. 1; GKC
    `detr_panoptic_caption_syn_kd_dataset_mapper.py` L225–285).

    Per segment of class k with names w_k^1..w_k^J (canonical first) and scores S (J,):

    - ``paper``: P(j) = S_j / Σ S (the paper: "using the synonym score as the probability").
    - ``code``: uniform over {j : S_j > threshold} (GKC `detr_panoptic_caption_syn_kd_dataset_mapper.py` L259).

    Fallbacks (documented choices; GKC's ``random.choice`` raises when no synonym qualifies): a
    class with one name, or a segment with ``scores[s] is None`` (not in the score table), always gets
    its canonical name. When no name qualifies (``code``: no score above ``threshold``; ``paper``:
    all scores 0) the segment gets ``fallback``: ``plain`` = the canonical name (default) or
    ``argmax`` = its best-scored name (the first one on ties).

    All segments are drawn with one ``torch.multinomial`` call on a (S, J_max) probability matrix,
    so a given generator state and input give the same names (CPU; same torch version).

    Args:
        classes: (S,) class index of each segment, in [0, K).
        scores: S entries, each (J_k,) non-negative scores over its class's names in the
            vocabulary's order (:meth:`SynonymScores.get`), or ``None``.
        vocab: the synonym vocabulary.
        mode: ``paper`` | ``code``.
        threshold: ``code`` candidate threshold (> threshold, strictly).
        fallback: ``plain`` | ``argmax``.
        generator: CPU generator (``None``: torch's global RNG).

    Returns:
        (S,) int64 name indices into ``vocab.names`` (the drawn name of each segment).

    Raises:
        ValueError: bad mode/fallback, ``len(scores) != S``, a class out of range, a score vector of
            the wrong length, or a negative / non-finite score.
    """
    _check_choice(mode, RANDOM_MODES, "random mode")
    _check_choice(fallback, FALLBACKS, "fallback")
    return _draw_synonyms(classes, scores, vocab, _DRAW_RULES[mode], threshold, _FALLBACK_RULES[fallback], generator)


def _draw_synonyms(classes, scores, vocab: SynonymVocabulary, rule: DrawRule, threshold: float,
                   fallback: FallbackRule, generator: torch.Generator | None) -> torch.Tensor:
    """:func:`sample_synonyms` with its rules resolved (the draw rule and the fallback as callables)."""
    classes = torch.as_tensor(classes, dtype=torch.long).reshape(-1)
    n = classes.numel()
    if len(scores) != n:
        raise ValueError(f"{len(scores)} score vectors for {n} segments")
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    if (classes < 0).any() or (classes >= vocab.num_classes).any():
        raise ValueError(f"segment classes must be in [0, {vocab.num_classes}), got {classes.tolist()}")
    groups = [vocab.class_names(k) for k in classes.tolist()]
    width = max(len(g) for g in groups)
    rows: list[list[float]] = []
    for s, (g, sc) in enumerate(zip(groups, scores)):
        row = [0.0] * width
        if sc is None or len(g) == 1:
            row[0] = 1.0
            rows.append(row)
            continue
        sc = sc.reshape(-1).tolist() if isinstance(sc, torch.Tensor) else [float(x) for x in sc]
        if len(sc) != len(g):
            raise ValueError(f"segment {s} (class {vocab.classes[vocab.name_to_class[g[0]]]!r}): {len(sc)} scores "
                             f"for {len(g)} names")
        if not all(math.isfinite(x) and x >= 0 for x in sc):
            raise ValueError(f"segment {s}: scores must be finite and >= 0, got {sc}")
        p = rule(sc, threshold)
        if not any(p):
            p = [0.0] * len(sc)
            p[fallback(sc)] = 1.0
        row[: len(p)] = p
        rows.append(row)
    probs = torch.tensor(rows, dtype=torch.float64)
    local = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    start = torch.tensor([g[0] for g in groups], dtype=torch.long)
    return start + local


@dataclass(frozen=True)
class ImageColumns:
    """The classifier columns of one image under Random TD (GKC `detr_panoptic_caption_syn_kd_dataset_mapper.py`
    L225–285).

    Attributes:
        names: (C,) int64 name index of each column; the first K columns are the classes (canonical
            or replaced), then the appended synonyms. C ≥ K.
        segment_columns: (S,) int64 column of each segment (its CE target under Random).
    """

    names: torch.Tensor
    segment_columns: torch.Tensor


def image_columns(segment_classes: torch.Tensor | Sequence[int], segment_names: torch.Tensor | Sequence[int],
                  vocab: SynonymVocabulary) -> ImageColumns:
    """Build one image's columns from its segments' drawn names, exactly as GKC's mapper does.

    Start from the K canonical names; for each segment in order with class k and drawn name n:
    if n is column k's current name, mark k changed; else if k is not changed yet, column k := n
    and mark it changed; else n gets an extra column appended after the K (reused when n was
    already appended). The segment's target is the column holding n. Every name appears in at
    most one column.

    Args:
        segment_classes: (S,) class indices.
        segment_names: (S,) name indices (:func:`sample_synonyms`), each a name of its class.

    Returns:
        :class:`ImageColumns`.

    Raises:
        ValueError: lengths differ, or a name does not belong to its segment's class.
    """
    classes = torch.as_tensor(segment_classes, dtype=torch.long).reshape(-1).tolist()
    names = torch.as_tensor(segment_names, dtype=torch.long).reshape(-1).tolist()
    if len(classes) != len(names):
        raise ValueError(f"{len(classes)} segment classes but {len(names)} segment names")
    columns = list(vocab.canonical_index)
    changed = [False] * vocab.num_classes
    extra: dict[int, int] = {}
    targets = []
    for s, (k, n) in enumerate(zip(classes, names)):
        if not (0 <= n < vocab.num_names) or vocab.name_to_class[n] != k:
            raise ValueError(f"segment {s}: name index {n} is not a name of class {k}")
        if columns[k] == n:
            changed[k] = True
            targets.append(k)
        elif not changed[k]:
            columns[k] = n
            changed[k] = True
            targets.append(k)
        else:
            if n not in extra:
                extra[n] = len(columns)
                columns.append(n)
            targets.append(extra[n])
    return ImageColumns(torch.tensor(columns, dtype=torch.long), torch.tensor(targets, dtype=torch.long))


@dataclass(frozen=True)
class BatchColumns:
    """Per-image columns of a batch, padded to the batch maximum C.

    Attributes:
        names: (B, C) int64 name index per column, ``-1`` for padding.
        valid: (B, C) bool, False for padding.
    """

    names: torch.Tensor
    valid: torch.Tensor

    @property
    def void_index(self) -> int:
        """C: the void column's index in :func:`column_logits` output (and the void target value)."""
        return self.names.shape[1]


def batch_columns(images: Sequence[ImageColumns]) -> BatchColumns:
    """Pad the columns of B images to a (B, C) table (C = the largest per-image count).

    Raises:
        ValueError: no image.
    """
    if not images:
        raise ValueError("batch_columns needs at least one image")
    width = max(int(im.names.numel()) for im in images)
    names = torch.full((len(images), width), -1, dtype=torch.long)
    for b, im in enumerate(images):
        names[b, : im.names.numel()] = im.names
    return BatchColumns(names, names >= 0)


def column_logits(name_logits: torch.Tensor, columns: BatchColumns) -> torch.Tensor:
    """Gather each image's column logits from the logits over all names (Random TD).

    Args:
        name_logits: (B, Q, N+1) logits over all vocabulary names, void last.
        columns: (B, C) columns.

    Returns:
        (B, Q, C+1): column c of image b = ``name_logits[b, :, columns.names[b, c]]``, padding
        columns ``-inf``, void last.

    Raises:
        ValueError: batch sizes differ or a column names an index ≥ N.
    """
    b, q, n1 = name_logits.shape
    if columns.names.shape[0] != b:
        raise ValueError(f"name_logits has batch {b}, columns {columns.names.shape[0]}")
    names = columns.names.to(name_logits.device)
    valid = columns.valid.to(name_logits.device)
    if (names >= n1 - 1).any():
        raise ValueError(f"a column names index {int(names.max())} but there are only {n1 - 1} names")
    idx = names.clamp_min(0).unsqueeze(1).expand(b, q, names.shape[1])
    gathered = name_logits.gather(-1, idx)
    gathered = gathered.masked_fill(~valid.unsqueeze(1), float("-inf"))
    return torch.cat([gathered, name_logits[..., -1:]], dim=-1)


def column_targets(
    class_targets: torch.Tensor,
    name_targets: torch.Tensor,
    columns: BatchColumns,
    vocab: SynonymVocabulary,
    *,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Map per-query targets to column indices (Random TD).

    Args:
        class_targets: (B, Q) class in [0, K), K = void, or ``ignore_index``.
        name_targets: (B, Q) the drawn name index of the matched segment where the query is
            matched (``class_targets`` in [0, K)); any value elsewhere.
        columns: the batch's columns.

    Returns:
        (B, Q) int64: the column holding the name (matched), ``columns.void_index`` (void) or
        ``ignore_index``.

    Raises:
        ValueError: a matched query's name is not a name of its class or not in its image's columns.
    """
    k = vocab.num_classes
    names = columns.names.to(class_targets.device)
    valid = columns.valid.to(class_targets.device)
    matched = (class_targets >= 0) & (class_targets < k)
    nt = torch.where(matched, name_targets.to(class_targets.device), torch.zeros_like(class_targets))
    if ((nt < 0) | (nt >= vocab.num_names)).any():
        raise ValueError("name_targets of matched queries must be in [0, N)")
    owner = vocab.name_to_class_tensor(class_targets.device)[nt]
    if (matched & (owner != class_targets)).any():
        raise ValueError("a matched query's name target is not a name of its class target")
    eq = (nt.unsqueeze(-1) == names.unsqueeze(1)) & valid.unsqueeze(1)
    if (matched & ~eq.any(-1)).any():
        raise ValueError("a matched query's name is not among its image's columns (build the columns "
                         "from the same drawn names)")
    col = eq.to(torch.int64).argmax(-1)
    void = torch.full_like(class_targets, columns.void_index)
    ignore = torch.full_like(class_targets, ignore_index)
    return torch.where(matched, col, torch.where(class_targets == k, void, ignore))


# ---------------------------------------------------------------------------------- GroupAvg/Max
_SCATTER_REDUCE = {"mean": "mean", "max": "amax"}


def group_logits(
    logits: torch.Tensor,
    name_to_class: torch.Tensor | Sequence[int],
    reduce: str,
    *,
    num_classes: int | None = None,
    void: bool = True,
) -> torch.Tensor:
    """Class logits from name logits: mean (GroupAvg) or max (GroupMax) over each class's names.

    z_{q,k} = mean_{s: class(s)=k} z_{q,s}  or  max_{s: class(s)=k} z_{q,s}, on logits before the
    softmax (GKC `mask2former/maskformer_model_voca_dense_kd_syn.py` L912–915; GKC Tab. 7a). The void column
    is its own group, kept as is.

    Args:
        logits: (..., N+1) with void last when ``void`` else (..., N).
        name_to_class: (N,) class index of each name.
        reduce: ``mean`` | ``max``.
        num_classes: K (default: ``max(name_to_class) + 1``).
        void: the input has a void column (last), copied to the output's last column.

    Returns:
        (..., K+1) (void last) or (..., K).

    Raises:
        ValueError: bad ``reduce``, N disagrees with ``logits``, an index outside [0, K), or a class
            with no name (its logit would be undefined).
    """
    _check_choice(reduce, ("mean", "max"), "reduce")
    idx = torch.as_tensor(name_to_class, dtype=torch.long, device=logits.device).reshape(-1)
    n = idx.numel()
    if logits.shape[-1] != n + int(void):
        raise ValueError(f"logits have {logits.shape[-1]} columns; expected {n} names" + (" + void" if void else ""))
    k = int(idx.max()) + 1 if num_classes is None and n else int(num_classes or 0)
    if n and ((idx < 0).any() or (idx >= k).any()):
        raise ValueError(f"name_to_class values must be in [0, {k})")
    empty = torch.bincount(idx, minlength=k) == 0 if n else torch.ones(k, dtype=torch.bool)
    if empty.any():
        raise ValueError(f"classes {empty.nonzero().flatten().tolist()} have no name")
    names = logits[..., :n]
    out = names.new_zeros(*names.shape[:-1], k).scatter_reduce(
        -1, idx.expand_as(names), names, reduce=_SCATTER_REDUCE[reduce], include_self=False
    )
    return torch.cat([out, logits[..., n:]], dim=-1) if void else out


def canonical_logits(name_logits: torch.Tensor, vocab: SynonymVocabulary) -> torch.Tensor:
    """The plain-name logits: the canonical name's column of each class, then void.

    Args:
        name_logits: (..., N+1), void last.

    Returns:
        (..., K+1).

    Raises:
        ValueError: the last dimension is not N+1.
    """
    if name_logits.shape[-1] != vocab.num_names + 1:
        raise ValueError(f"name_logits have {name_logits.shape[-1]} columns; expected N+1 = {vocab.num_names + 1}")
    idx = torch.tensor([*vocab.canonical_index, vocab.num_names], dtype=torch.long, device=name_logits.device)
    return name_logits.index_select(-1, idx)


# ----------------------------------------------------------------------------------------- loss
def _ce(logits: torch.Tensor, targets: torch.Tensor, void_weight: float) -> torch.Tensor:
    if not (targets != IGNORE_INDEX).any():
        return logits.nan_to_num(0.0, 0.0, 0.0).sum() * 0.0
    return class_loss(logits, targets, void_weight)


# ----------------------------------------------------------------------------------- strategies
class TextDiversification:
    """A TD strategy, built once (:func:`build_text_diversification`); this base class is ``none``.

    The objectives (:class:`ovlab.gkc.criterion.GkcObjective`, :class:`ovlab.video.criterion.VideoObjective`)
    ask it, per batch: the training text bank (:meth:`training_text`), one name per GT segment
    (:meth:`draw_names`), the per-image columns (:meth:`columns`) and per-query name targets
    (:meth:`query_name_targets`) of Random TD, and the classification terms (:meth:`loss`).

    Attributes:
        name: the config value (``gkc.td.strategy``).
        enabled: the model scores the synonym bank (every strategy but ``none``).
        draws: names are drawn from synonym scores (``random``), so the caller must supply scores.
        vocab: the synonym vocabulary (``None`` for ``none``).
        bank: (N, D) text embeddings of ``vocab.names`` (``None`` for ``none``).
        keep_plain_ce: also return the plain-name CE (GKC code); no effect for ``none``.
        scores: the per-segment synonym score table (``random`` with a table), else ``None``.
    """

    scores = None
    name: ClassVar[str] = "none"
    enabled: ClassVar[bool] = False
    draws: ClassVar[bool] = False

    def __init__(self, vocab: SynonymVocabulary | None = None, bank: torch.Tensor | None = None, *,
                 keep_plain_ce: bool = False):
        self.vocab, self.bank, self.keep_plain_ce = vocab, bank, keep_plain_ce

    # ---------------------------------------------------------------------------------- text
    def training_text(self, default: torch.Tensor) -> torch.Tensor:
        """The embeddings the model scores in training: ``default`` (``none``) or the synonym bank."""
        return default

    def draw_names(self, classes: torch.Tensor, scores: Callable[[], Sequence], generator) -> torch.Tensor | None:
        """(S,) name index of each GT segment of one image (``None`` for ``none``: no bank).

        Args:
            classes: (S,) CPU class indices.
            scores: called (only by ``random``) for the S score vectors of :func:`sample_synonyms`.
            generator: the draws' generator (``random`` only).
        """
        return None

    def columns(self, classes: Sequence[torch.Tensor], names: Sequence[torch.Tensor]) -> BatchColumns | None:
        """The batch's per-image columns (``random``), else ``None``."""
        return None

    def query_name_targets(self, targets: torch.Tensor, matches, names) -> torch.Tensor | None:
        """(B, Q) drawn name of each matched query's segment (``random``), else ``None``."""
        return None

    # ---------------------------------------------------------------------------------- loss
    def _diversified(self, name_logits, class_targets, name_targets, columns):
        """(logits, targets) of the diversified CE."""
        raise NotImplementedError

    def _plain_logits(self, name_logits: torch.Tensor) -> torch.Tensor:
        return canonical_logits(name_logits, self.vocab)

    def loss(self, name_logits: torch.Tensor, class_targets: torch.Tensor, *,
             name_targets: torch.Tensor | None = None, columns: BatchColumns | None = None,
             void_weight: float = 0.1) -> dict[str, torch.Tensor]:
        """The classification terms (GKC §3.1, Eq. 4's L_CE), unweighted: see :func:`classification_loss`."""
        plain = _ce(self._plain_logits(name_logits), class_targets, void_weight)
        if not self.enabled:
            return {"loss_ce": plain}
        syn = _ce(*self._diversified(name_logits, class_targets, name_targets, columns), void_weight)
        return {"loss_ce": plain, "loss_syn": syn} if self.keep_plain_ce else {"loss_ce": syn}


class NoDiversification(TextDiversification):
    """``none``: the plain CE over the K canonical names (class logits (…, K+1) are accepted too)."""

    def _plain_logits(self, name_logits: torch.Tensor) -> torch.Tensor:
        if self.vocab is None or name_logits.shape[-1] == self.vocab.num_classes + 1:
            return name_logits
        return canonical_logits(name_logits, self.vocab)


class _BankDiversification(TextDiversification):
    """A strategy that scores the bank of every synonym (all but ``none``)."""

    enabled = True

    def __init__(self, vocab: SynonymVocabulary, bank: torch.Tensor | None = None, *, keep_plain_ce: bool = False):
        if vocab is None:
            raise ValueError(f"the {self.name} TD strategy needs a synonym vocabulary")
        super().__init__(vocab, bank, keep_plain_ce=keep_plain_ce)

    def training_text(self, default: torch.Tensor) -> torch.Tensor:
        return self.bank.to(default.device)

    def draw_names(self, classes, scores, generator):
        return torch.tensor([self.vocab.canonical_index[k] for k in classes.tolist()], dtype=torch.long)


class GroupDiversification(_BankDiversification):
    """``group_avg`` / ``group_max``: class logit = mean / max of its names' logits (:func:`group_logits`)."""

    reduce: ClassVar[str] = "mean"

    def _diversified(self, name_logits, class_targets, name_targets, columns):
        logits = group_logits(name_logits, self.vocab.name_to_class_tensor(name_logits.device), self.reduce,
                              num_classes=self.vocab.num_classes)
        return logits, class_targets


class GroupAvgDiversification(GroupDiversification):
    """GroupAvg (GKC Tab. 7a; GKC config ``clusterAvg``)."""

    name, reduce = "group_avg", "mean"


class GroupMaxDiversification(GroupDiversification):
    """GroupMax (GKC Tab. 7a; GKC config ``clusterMax``)."""

    name, reduce = "group_max", "max"


class RandomDiversification(_BankDiversification):
    """``random`` (GKC §3.1; GKC config ``thresRand``): one drawn name per GT segment, per-image columns.

    Args:
        vocab, bank, keep_plain_ce: as :class:`TextDiversification`.
        mode: ``paper`` | ``code`` (:func:`sample_synonyms`).
        threshold: ``code`` candidate threshold.
        fallback: ``plain`` | ``argmax``.
        scores: the synonym score table (:class:`ovlab.vocab.synonym_vocab.SynonymScores`), or ``None``
            when the caller scores segments itself (the video objective).
    """

    name = "random"
    draws = True

    def __init__(self, vocab: SynonymVocabulary, bank: torch.Tensor | None = None, *, keep_plain_ce: bool = False,
                 mode: str = "paper", threshold: float = DEFAULT_THRESHOLD, fallback: str = "plain", scores=None):
        _check_choice(mode, RANDOM_MODES, "random mode")
        _check_choice(fallback, FALLBACKS, "fallback")
        super().__init__(vocab, bank, keep_plain_ce=keep_plain_ce)
        self.mode, self.threshold, self.fallback = mode, threshold, fallback
        self._rule, self._fallback = _DRAW_RULES[mode], _FALLBACK_RULES[fallback]
        self.scores = scores

    def draw_names(self, classes, scores, generator):
        return _draw_synonyms(classes, scores(), self.vocab, self._rule, self.threshold, self._fallback, generator)

    def columns(self, classes, names):
        return batch_columns([image_columns(classes[b].cpu(), names[b], self.vocab) for b in range(len(classes))])

    def query_name_targets(self, targets, matches, names):
        out = torch.zeros_like(targets)
        for b, (q, t) in enumerate(matches):
            out[b, q.to(targets.device)] = names[b][t.cpu()].to(targets.device)
        return out

    def _diversified(self, name_logits, class_targets, name_targets, columns):
        if name_targets is None or columns is None:
            raise ValueError("the random strategy needs name_targets and columns")
        return column_logits(name_logits, columns), column_targets(class_targets, name_targets, columns, self.vocab)


TD_STRATEGIES: dict[str, type[TextDiversification]] = {
    "none": NoDiversification, "random": RandomDiversification,
    "group_avg": GroupAvgDiversification, "group_max": GroupMaxDiversification,
}
"""Config value of ``gkc.td.strategy`` → strategy class (the one place the name is looked at)."""


def _strategy_class(strategy: str) -> type[TextDiversification]:
    _check_choice(strategy, STRATEGIES, "TD strategy")
    return TD_STRATEGIES[strategy]


def build_text_diversification(
    td,
    synonyms: Callable[[], SynonymVocabulary],
    bank: Callable[[SynonymVocabulary], torch.Tensor],
    scores: Callable[[SynonymVocabulary], object] | None = None,
) -> TextDiversification:
    """The TD strategy of a ``gkc.td`` section (:class:`ovlab.config.gkc.TextDiversificationParams`).

    The loaders are called only when the strategy needs them, in this order: ``synonyms`` (every
    strategy but ``none``), ``bank`` (its text embeddings), ``scores`` (``random``, when given).

    Args:
        td: the params (``strategy``, ``random_mode``, ``threshold``, ``fallback``, ``keep_plain_ce``).
        synonyms: loads the synonym vocabulary of the training classes.
        bank: (N, D) embeddings of the vocabulary's names.
        scores: loads the per-segment synonym score table (``None``: the caller scores segments).

    Raises:
        ValueError: unknown strategy; whatever the loaders raise.
    """
    cls = _strategy_class(td.strategy)
    if not cls.enabled:
        return cls(keep_plain_ce=td.keep_plain_ce)
    vocab = synonyms()
    emb = bank(vocab)
    if not cls.draws:
        return cls(vocab, emb, keep_plain_ce=td.keep_plain_ce)
    table = scores(vocab) if scores is not None else None
    return cls(vocab, emb, keep_plain_ce=td.keep_plain_ce, mode=td.random_mode, threshold=td.threshold,
               fallback=td.fallback, scores=table)


def training_synonym_scores(scores_path, synonyms_path, vocab: SynonymVocabulary):
    """The per-segment synonym scores (GKC Eq. 1) of the training vocabulary ``vocab``.

    The ``synonym_score`` stage scores every segment of every class of the synonyms file (all 133
    COCO-panoptic classes, as GKC ``syn_CLIP_sim.py``); a training vocabulary may hold fewer (the
    seen classes). Segments of the synonyms file's other classes are not trained on (their segments
    are dropped from the targets), so they are left out of the table; a segment whose class is in
    neither file still raises (stale or mismatched stage outputs).

    Args:
        scores_path: the ``synonym_score`` stage output.
        synonyms_path: the ``synonyms`` stage output the scores were made from.
        vocab: the training classes' :class:`~ovlab.vocab.synonym_vocab.SynonymVocabulary`.

    Returns:
        :class:`~ovlab.vocab.synonym_vocab.SynonymScores` aligned with ``vocab``.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a malformed file, or a segment of a class the synonyms file does not have.
    """
    from ovlab.vocab.synonym_vocab import load_synonym_scores, load_synonym_vocabulary

    others = set(load_synonym_vocabulary(synonyms_path).classes) - set(vocab.classes)
    return load_synonym_scores(scores_path, vocab, skip_classes=others)


def classification_loss(
    name_logits: torch.Tensor,
    class_targets: torch.Tensor,
    vocab: SynonymVocabulary,
    strategy: str = "none",
    *,
    name_targets: torch.Tensor | None = None,
    columns: BatchColumns | None = None,
    keep_plain_ce: bool = False,
    void_weight: float = 0.1,
) -> dict[str, torch.Tensor]:
    """The classification terms under a TD strategy (GKC §3.1, Eq. 4; GKC
    `mask2former/maskformer_model_voca_dense_kd_syn.py`).

    Functional form of :meth:`TextDiversification.loss` (the objectives hold a strategy object).
    Each CE is the void-weighted CE of :func:`ovlab.segmenter.class_loss.class_loss` (void weight
    0.1; targets ``IGNORE_INDEX`` = -100 are left out; 0 when all are).

    - plain: ``canonical_logits`` vs ``class_targets``.
    - ``group_avg`` / ``group_max``: ``group_logits`` vs ``class_targets``.
    - ``random``: ``column_logits`` vs ``column_targets(class_targets, name_targets, columns)``.

    Args:
        name_logits: (B, Q, N+1) logits over all vocabulary names, void last. For ``none`` the
            (B, Q, K+1) class logits are accepted too.
        class_targets: (B, Q) class in [0, K), K = void, or -100 (e.g. region dropout).
        vocab: the synonym vocabulary.
        strategy: one of :data:`STRATEGIES`.
        name_targets: ``random`` only: (B, Q) drawn name of each matched query's segment.
        columns: ``random`` only: the batch's columns (:func:`batch_columns`).
        keep_plain_ce: also return the plain-name CE (GKC code); no effect for ``none``.
        void_weight: CE weight of void.

    Returns:
        ``{"loss_ce": plain}`` for ``none``; otherwise ``{"loss_ce": diversified}`` (paper), or
        ``{"loss_ce": plain, "loss_syn": diversified}`` with ``keep_plain_ce`` (code keys). Unweighted.

    Raises:
        ValueError: unknown strategy, wrong logits width, or ``random`` without ``name_targets``
            and ``columns``.
    """
    td = _strategy_class(strategy)(vocab, keep_plain_ce=keep_plain_ce)
    return td.loss(name_logits, class_targets, name_targets=name_targets, columns=columns, void_weight=void_weight)
