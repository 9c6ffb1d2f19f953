"""GKC knowledge distillation from a frozen CLIP teacher (GKC Eq. 2–3, §3.2, Tab. 5–6).

A mode × form is an object (:class:`Distillation`) built once from the ``gkc.kd`` params by
:func:`build_distillation`; the objectives call it and never look at the mode or form name again.
The functions (:func:`distill_loss`, :func:`tgkd_loss`, …) are the same computation by name.

Notation (one GT instance i per row, all rows L2-normalised here, which is idempotent):
v_i the student embedding of the query matched to instance i, r_i the teacher's CLIP embedding of
instance i, t_i the text embedding of its class name (with Random TD: the drawn synonym, as GKC's
code uses the per-image column name), s a (learnable) text scale. Pairs (i, j) run over instances
of the **same image**, including i = j (GKC code; Eq. 3's double sum also contains j = i).

Forms (:class:`KdForm`):

- ``paper`` (:class:`PaperForm`) — Eq. 2: L_KD = (1/N) Σ_i ‖v_i − r_i‖; Eq. 3: L_TGKD = (1/N) Σ_i Σ_j
  | ‖v_i − r_j‖ − ‖s·t_i − s·t_j‖ |. The paper leaves "‖A − B‖" unspecified; **we use the Euclidean
  (L2) distance between the L2-normalised vectors** (in [0, 2]; = sqrt(2 − 2 cos)). Over a batch the
  sums run over every image's pairs and N is the number of instances of the batch (Σ_b n_b), so one
  image gives exactly Eq. 3. With s = 1 (default) the paper's formula is unchanged; a learnable s
  scales the text distance by |s|.
- ``code`` (:class:`CodeForm`) — GKC ``loss_text_kd`` (GKC `mask2former/maskformer_model_voca_dense_kd_syn.py`
  L925–952): a_ij = (s²·⟨t_i, t_j⟩ − ⟨v_i, r_j⟩)², b_i = ‖v_i − r_i‖² (= 2 − 2⟨v_i, r_i⟩), and L = mean over the concatenation of all
  a_ij of all images and all b_i: (Σ a + Σ b) / (Σ_b n_b² + Σ_b n_b). s is ``text_kd_logit_scale``
  (init 1.0, learnt). Vanilla alone (``code``) is mean_i b_i.

Modes (GKC Tab. 5): ``vanilla`` (Eq. 2), ``text_guided`` (Eq. 3), ``vision_guided`` (Tab. 5's
"vision-guided", not in GKC's code; our reading: the target ⟨r_i, r_j⟩ — ``paper``: ‖r_i − r_j‖ —
replaces the text term, no s).

Teacher and student features (computed by the model, not here; GKC §3.2, Tab. 6; GKC
``mask2former/kd_clip.py`` and GKC `mask2former/maskformer_model_voca_dense_kd_syn.py` L560–656):

- teacher ``global``: the attention-pool global token of CLIP RN50 (GKC ``attn_g``, the code's
  default ``KD.TEC_SOURCE``) — ``ovlab.clip.dense.attention_pool(...)[0]``.
- teacher ``spatial``: the attention-pool output at every spatial position (``attn_l``; paper best,
  released checkpoint) — ``attention_pool(...)[1]``, then pooled: GKC's code averages all 7×7
  positions of a grey-filled crop (background included); the paper's "mask-based pooling in the
  attention pooling" is ``ovlab.clip.dense.masked_attention_pool`` (or ``mask_pool`` over the mask).
- teacher input: ``crop`` = the un-augmented image, outside the mask grey (128), cropped to the
  mask bbox (GKC's exclusive-max quirk loses the last row/column; GKC
  ``detr_panoptic_caption_syn_kd_dataset_mapper.py`` L299–331), stretched bicubic to 224 —
  ``ovlab.clip.crops.masked_crops(image, masks, fill="grey", resize="stretch",
  exclusive_max_quirk=True)``; or ``in_model_mask`` = the GT mask times the augmented image, no crop.
- teacher BatchNorm: GKC leaves the teacher in train mode (batch statistics; a quirk); the kit
  default is eval mode.
- student ``prior``: Linear(256→1024) of the matched query's class-embed output (one linear per
  decoder layer); ``post``: a linear on the projected embedding.
- at most 200 instances per (per-GPU) batch, a random subset (:func:`subsample_instances`).

Citations "GKC `path` Lnn" point into the official GKC code, github.com/yongliu20/GKC at commit
21313c8 (file and line); "GKC Eq. n / §n / Tab. n" into the paper (Han et al., ICCV 2023).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

MODES = ("none", "vanilla", "vision_guided", "text_guided")
FORMS = ("paper", "code")
MAX_INSTANCES = 200
"""GKC ``KD.MAX_LIST_LEN``: instances kept per GPU batch."""


def _check(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {choices}, got {value!r}")


def _as_rows(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() != 2:
        raise ValueError(f"{name} must be (N, D), got shape {tuple(x.shape)}")
    return F.normalize(x, dim=-1, eps=1e-12)


def _scale(text_scale, like: torch.Tensor) -> torch.Tensor:
    return text_scale if isinstance(text_scale, torch.Tensor) else torch.tensor(float(text_scale), dtype=like.dtype,
                                                                                   device=like.device)


def _zero(*tensors) -> torch.Tensor:
    """0 connected to every tensor that needs a gradient (keeps DDP's used-parameter set stable)."""
    out = None
    for t in tensors:
        if isinstance(t, torch.Tensor):
            z = t.sum() * 0.0
            out = z if out is None else out + z
    return out


def same_image_pairs(image_ids: torch.Tensor) -> torch.Tensor:
    """(N, N) bool: True where instances i and j come from the same image (diagonal included)."""
    ids = torch.as_tensor(image_ids).reshape(-1)
    return ids.unsqueeze(0) == ids.unsqueeze(1)


def subsample_instances(n: int, max_instances: int | None = MAX_INSTANCES,
                        generator: torch.Generator | None = None) -> torch.Tensor | None:
    """Indices of a random subset of at most ``max_instances`` of n instances (GKC ``MAX_LIST_LEN``).

    Returns:
        sorted (max_instances,) int64 indices, or ``None`` when no subsampling is needed.

    Raises:
        ValueError: ``max_instances < 1``.
    """
    if max_instances is None or n <= max_instances:
        return None
    if max_instances < 1:
        raise ValueError(f"max_instances must be >= 1, got {max_instances}")
    return torch.randperm(n, generator=generator)[:max_instances].sort().values


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) Euclidean distances computed from differences (exact 0 on equal rows, gradient 0 there)."""
    return torch.cdist(a.unsqueeze(0), b.unsqueeze(0), compute_mode="donot_use_mm_for_euclid_dist").squeeze(0)


# ---------------------------------------------------------------------------------------- forms
class KdForm:
    """How distances enter the KD terms: :class:`PaperForm` (GKC Eq. 2–3) or :class:`CodeForm` (GKC's code)."""

    name: ClassVar[str]

    def vanilla(self, diff: torch.Tensor) -> torch.Tensor:
        """(N,) per-instance vanilla term from the (N, D) rows v_i − r_i."""
        raise NotImplementedError

    def text_target(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """(N, N) text-guided target from unit text rows t and the scale s."""
        raise NotImplementedError

    def vision_target(self, r: torch.Tensor) -> torch.Tensor:
        """(N, N) vision-guided target from the unit teacher rows r."""
        raise NotImplementedError

    def pairwise(self, v, r, target, pairs, n) -> torch.Tensor:
        """The guided loss: the pairwise term (the vanilla term averaged in for ``code``)."""
        raise NotImplementedError

    def pair_only(self, v, r, target, pairs) -> torch.Tensor:
        """The pairwise part alone (GKC's ``loss_text_kd`` when reported separately)."""
        raise NotImplementedError


class PaperForm(KdForm):
    """Euclidean distances, |distance − distance| (GKC Eq. 2–3)."""

    name = "paper"

    def vanilla(self, diff):
        return diff.norm(dim=-1)

    def text_target(self, t, s):
        return s.abs() * _distances(t, t)

    def vision_target(self, r):
        return _distances(r, r)

    def pairwise(self, v, r, target, pairs, n):
        d = _distances(v, r)
        return (d - target).abs()[pairs].sum() / n

    def pair_only(self, v, r, target, pairs):
        return (_distances(v, r) - target).abs()[pairs].sum() / v.shape[0]


class CodeForm(KdForm):
    """Squared error of cosines with s², the vanilla term averaged in (GKC
    `mask2former/maskformer_model_voca_dense_kd_syn.py` L925–952)."""

    name = "code"

    def vanilla(self, diff):
        return diff.pow(2).sum(-1)

    def text_target(self, t, s):
        return s * s * (t @ t.T)

    def vision_target(self, r):
        return r @ r.T

    def pairwise(self, v, r, target, pairs, n):
        a = (target - v @ r.T).pow(2)
        b = (v - r).pow(2).sum(-1)
        return (a[pairs].sum() + b.sum()) / (pairs.sum() + n)

    def pair_only(self, v, r, target, pairs):
        return (target - v @ r.T).pow(2)[pairs].mean()


KD_FORMS: dict[str, KdForm] = {"paper": PaperForm(), "code": CodeForm()}
"""Config value of ``gkc.kd.form`` → form."""


def kd_form(form: str) -> KdForm:
    """The :class:`KdForm` named ``form``.

    Raises:
        ValueError: not one of :data:`FORMS`.
    """
    _check(form, FORMS, "KD form")
    return KD_FORMS[form]


# ------------------------------------------------------------------------------------- formulas
def _vanilla(student: torch.Tensor, teacher: torch.Tensor, form: KdForm) -> torch.Tensor:
    v, r = _as_rows(student, "student"), _as_rows(teacher, "teacher")
    if v.shape != r.shape:
        raise ValueError(f"student {tuple(v.shape)} and teacher {tuple(r.shape)} differ")
    if v.shape[0] == 0:
        return _zero(student, teacher)
    diff = v - r
    return form.vanilla(diff).mean()


def vanilla_kd_loss(student: torch.Tensor, teacher: torch.Tensor, form: str = "code") -> torch.Tensor:
    """Vanilla KD (GKC Eq. 2): ``paper`` mean_i ‖v_i − r_i‖ (Euclidean), ``code`` mean_i ‖v_i − r_i‖².

    Args:
        student, teacher: (N, D) (normalised here).
        form: ``paper`` | ``code``.

    Returns:
        0-d tensor; 0 (connected to the graph) when N = 0.

    Raises:
        ValueError: shapes differ or bad form.
    """
    return _vanilla(student, teacher, kd_form(form))


def _inputs(student, teacher, image_ids):
    v, r = _as_rows(student, "student"), _as_rows(teacher, "teacher")
    if v.shape != r.shape:
        raise ValueError(f"student {tuple(v.shape)} and teacher {tuple(r.shape)} differ")
    ids = torch.as_tensor(image_ids, device=v.device).reshape(-1)
    if ids.numel() != v.shape[0]:
        raise ValueError(f"{ids.numel()} image ids for {v.shape[0]} instances")
    return v, r, same_image_pairs(ids)


def _tgkd(student, teacher, text, image_ids, form: KdForm, text_scale) -> torch.Tensor:
    v, r, pairs = _inputs(student, teacher, image_ids)
    t = _as_rows(text, "text")
    if t.shape[0] != v.shape[0]:
        raise ValueError(f"text has {t.shape[0]} rows for {v.shape[0]} instances")
    s = _scale(text_scale, v)
    n = v.shape[0]
    if n == 0:
        return _zero(student, teacher, text, s)
    return form.pairwise(v, r, form.text_target(t, s), pairs, n)


def tgkd_loss(student, teacher, text, image_ids, form="code", text_scale=1.0):
    """Text-guided KD (GKC Eq. 3), pairs only within the same image.

    GKC's ``loss_text_kd``: GKC `mask2former/maskformer_model_voca_dense_kd_syn.py` L925–952.

    ``paper``: Σ_{i,j same image} | ‖v_i − r_j‖ − |s|·‖t_i − t_j‖ | / N (Euclidean distances).
    ``code``: (Σ_{i,j same image} (s²⟨t_i,t_j⟩ − ⟨v_i,r_j⟩)² + Σ_i ‖v_i − r_i‖²) / (Σ_b n_b² + N),
    i.e. the vanilla term averaged in, as GKC's code does.

    Args:
        student: (N, D) student embeddings v (normalised here).
        teacher: (N, D) teacher CLIP embeddings r, same order.
        text: (N, D_t) text embeddings t of each instance's (drawn) name.
        image_ids: (N,) ints; instance i and j are paired iff their ids are equal.
        form: ``code`` | ``paper``.
        text_scale: s, a float or a 0-d tensor (e.g. an ``nn.Parameter``; gradients flow to it).

    Returns:
        0-d tensor; 0 (connected to inputs and s) when N = 0. A single-instance image contributes
        its self-pair (i = j).

    Raises:
        ValueError: shapes disagree or bad form.
    """
    return _tgkd(student, teacher, text, image_ids, kd_form(form), text_scale)


def _vision_guided(student, teacher, image_ids, form: KdForm) -> torch.Tensor:
    v, r, pairs = _inputs(student, teacher, image_ids)
    n = v.shape[0]
    if n == 0:
        return _zero(student, teacher)
    return form.pairwise(v, r, form.vision_target(r), pairs, n)


def vision_guided_kd_loss(student: torch.Tensor, teacher: torch.Tensor, image_ids, form: str = "code") -> torch.Tensor:
    """Vision-guided KD (GKC Tab. 5; not in GKC's code, our reading of the table).

    As :func:`tgkd_loss` with the teacher's own structure as target: ``code`` ⟨r_i, r_j⟩ replaces
    s²⟨t_i, t_j⟩, ``paper`` ‖r_i − r_j‖ replaces ‖t_i − t_j‖.

    Returns:
        0-d tensor; 0 when N = 0.
    """
    return _vision_guided(student, teacher, image_ids, kd_form(form))


# ---------------------------------------------------------------------------------------- modes
class Distillation:
    """A KD mode with its form, built once (:func:`build_distillation`); this base class is ``none``.

    Call :meth:`loss` with one decoder prediction's students, teachers, image ids, texts and s.

    Attributes:
        name: the config value (``gkc.kd.mode``).
        enabled: any KD term (every mode but ``none``).
        form: the :class:`KdForm`.
        separate: GKC's ``TEXT_KD_WEIGHT > 0`` path (:func:`distill_loss`).
        max_instances: cap on the instances of a batch (:meth:`subsample`).
    """

    name: ClassVar[str] = "none"
    enabled: ClassVar[bool] = False
    needs_text: ClassVar[bool] = False

    def __init__(self, form: KdForm | str = "code", *, separate: bool = False,
                 max_instances: int | None = MAX_INSTANCES):
        self.form = kd_form(form) if isinstance(form, str) else form
        self.separate, self.max_instances = separate, max_instances

    def subsample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """:func:`subsample_instances` with this mode's ``max_instances``."""
        return subsample_instances(n, self.max_instances, generator)

    def loss(self, student: torch.Tensor, teacher: torch.Tensor, image_ids, *, text: torch.Tensor | None = None,
             text_scale=1.0) -> dict[str, torch.Tensor]:
        """KD term(s) of one decoder prediction, unweighted, on all given instances (no subsampling).

        Args:
            student, teacher: (N, D).
            image_ids: (N,).
            text: (N, D_t) (``text_guided`` only).
            text_scale: s (``text_guided`` only).

        Returns:
            ``{}`` (``none``), ``{"loss_kd"}``, or ``{"loss_kd", "loss_text_kd"}`` (``separate``).
        """
        return {}


class NoDistillation(Distillation):
    """``none``: no KD term."""


class VanillaDistillation(Distillation):
    """``vanilla`` (GKC Eq. 2; Tab. 5 "Vanilla")."""

    name, enabled = "vanilla", True

    def loss(self, student, teacher, image_ids, *, text=None, text_scale=1.0):
        return {"loss_kd": _vanilla(student, teacher, self.form)}


class _GuidedDistillation(Distillation):
    """The pairwise modes: a target matrix from the texts (``text_guided``) or the teachers (``vision_guided``)."""

    enabled = True

    def _joint(self, student, teacher, ids, text, text_scale):
        raise NotImplementedError

    def _target(self, r, text, text_scale, like):
        raise NotImplementedError

    def loss(self, student, teacher, image_ids, *, text=None, text_scale=1.0):
        if not self.separate:
            return {"loss_kd": self._joint(student, teacher, image_ids, text, text_scale)}
        vanilla = _vanilla(student, teacher, self.form)
        v, r, pairs = _inputs(student, teacher, image_ids)
        if v.shape[0] == 0:
            s = _scale(text_scale, v)
            return {"loss_kd": vanilla, "loss_text_kd": _zero(student, teacher, text, s)}
        return {"loss_kd": vanilla, "loss_text_kd": self.form.pair_only(v, r, self._target(r, text, text_scale, v),
                                                                        pairs)}


class TextGuidedDistillation(_GuidedDistillation):
    """``text_guided`` (GKC Eq. 3, TGKD; Tab. 5 "Text-guided")."""

    name, needs_text = "text_guided", True

    def _joint(self, student, teacher, ids, text, text_scale):
        return _tgkd(student, teacher, text, ids, self.form, text_scale)

    def _target(self, r, text, text_scale, like):
        t = _as_rows(text, "text")
        s = _scale(text_scale, like)
        return self.form.text_target(t, s)


class VisionGuidedDistillation(_GuidedDistillation):
    """``vision_guided`` (GKC Tab. 5 "Vision-guided"; :func:`vision_guided_kd_loss`)."""

    name = "vision_guided"

    def _joint(self, student, teacher, ids, text, text_scale):
        return _vision_guided(student, teacher, ids, self.form)

    def _target(self, r, text, text_scale, like):
        return self.form.vision_target(r)


KD_MODES: dict[str, type[Distillation]] = {
    "none": NoDistillation, "vanilla": VanillaDistillation,
    "vision_guided": VisionGuidedDistillation, "text_guided": TextGuidedDistillation,
}
"""Config value of ``gkc.kd.mode`` → mode class (the one place the name is looked at)."""


def make_distillation(mode: str, form: str = "code", *, separate: bool = False,
                      max_instances: int | None = MAX_INSTANCES) -> Distillation:
    """The :class:`Distillation` of a mode and form given by name.

    Raises:
        ValueError: unknown mode or form.
    """
    _check(mode, MODES, "KD mode")
    return KD_MODES[mode](kd_form(form), separate=separate, max_instances=max_instances)


def build_distillation(kd) -> Distillation:
    """The KD of a ``gkc.kd`` section (:class:`ovlab.config.gkc.DistillParams`: ``mode``, ``form``,
    ``separate_text_kd``, ``max_instances``).

    Raises:
        ValueError: unknown mode or form.
    """
    return make_distillation(kd.mode, kd.form, separate=kd.separate_text_kd, max_instances=kd.max_instances)


def distill_loss(
    mode: str,
    student: torch.Tensor,
    teacher: torch.Tensor,
    image_ids,
    *,
    text: torch.Tensor | None = None,
    form: str = "code",
    text_scale=1.0,
    max_instances: int | None = MAX_INSTANCES,
    generator: torch.Generator | None = None,
    separate: bool = False,
) -> dict[str, torch.Tensor]:
    """KD term(s) of one decoder layer under a mode (GKC Eq. 2–3, Tab. 5), by name.

    Keeps a random subset of ``max_instances`` instances first (GKC ``MAX_LIST_LEN`` = 200,
    :func:`subsample_instances`, seeded by ``generator``; ``None`` = global RNG) — use the same
    subset for every decoder layer by passing generators in the same state or subsampling yourself
    (as the objectives do, with :meth:`Distillation.subsample` and :meth:`Distillation.loss`).

    Args:
        mode: one of :data:`MODES`; ``none`` returns ``{}``.
        student, teacher: (N, D).
        image_ids: (N,).
        text: (N, D_t), required for ``text_guided``.
        form: ``code`` | ``paper``.
        text_scale: s (``text_guided`` only).
        max_instances: cap on N (``None``: no cap).
        generator: for the subset.
        separate: GKC's ``TEXT_KD_WEIGHT > 0`` path: return the vanilla part as ``loss_kd`` and the
            pairwise part as ``loss_text_kd`` (``code``: mean of a_ij over pairs; ``paper``: Eq. 3).

    Returns:
        ``{"loss_kd": L}`` (unweighted), or ``{"loss_kd", "loss_text_kd"}`` with ``separate`` for the
        guided modes.

    Raises:
        ValueError: bad mode/form, ``text`` missing for ``text_guided``, shape problems.
    """
    kd = make_distillation(mode, form, separate=separate, max_instances=max_instances)
    if not kd.enabled:
        return {}
    if kd.needs_text and text is None:
        raise ValueError("text_guided KD needs the text embeddings")
    keep = kd.subsample(student.shape[0], generator)
    ids = torch.as_tensor(image_ids).reshape(-1)
    if keep is not None:
        student, teacher = student[keep.to(student.device)], teacher[keep.to(teacher.device)]
        ids = ids[keep.to(ids.device)]
        text = text[keep.to(text.device)] if text is not None else None
    return kd.loss(student, teacher, ids, text=text, text_scale=text_scale)
