"""The ``tgkd`` training task: GKC's segmenter (GKC §3–4) in the engine.

The image task (:class:`ovlab.segmenter.task.ImageTask`) with GKC's additions: the TGKD student
head on the segmenter when knowledge distillation is on, and the Eq. 4 criterion
(:class:`ovlab.gkc.criterion.GkcObjective`) when any GKC term is (else the baseline's).
"""

from __future__ import annotations

from ovlab.gkc.criterion import build_objective
from ovlab.gkc.distill_heads import DistillHead
from ovlab.segmenter.build import Built, build, clip_embed_dim
from ovlab.segmenter.task import ImageTask


def attach_distill_head(built: Built) -> Built:
    """Give ``built.model`` its TGKD student head (``model.distill``) when ``gkc.kd.mode`` is not ``none``.

    The head projects the prior / post query embeddings of every decoder prediction into the CLIP
    space (GKC §3.2 and Tab. 6: the student is the query before or after projection).
    """
    cfg = built.stage.cfg
    kd = getattr(getattr(cfg, "gkc", None), "kd", None)
    if kd is not None and kd.mode != "none":
        dim = clip_embed_dim(built.clip)
        built.model.distill = DistillHead(kd.student, cfg.model.hidden_dim, dim, cfg.model.decoder_layers + 1,
                                          text_scale_init=kd.text_scale_init, learn_text_scale=kd.learn_text_scale)
    return built


class GkcTask(ImageTask):
    """GKC on COCO-panoptic-layout data: the image task + the TGKD head + the GKC criterion."""

    def build(self, stage) -> Built:
        """CLIP (frozen) + a fresh segmenter (torch seeded with ``base.seed``) + the KD head if KD is on.

        Raises:
            WeightsNotFoundError: the CLIP weights are not on disk.
        """
        return attach_distill_head(build(stage))

    def evaluate(self, stage, built: Built, device, progress: bool, cache_dir=None):
        """The image task's evaluation, or — with ``two_stage.enabled`` — the two-stage baseline's
        (GKC Tab. 8: the model's masks, or the ground truth with ``proposals: oracle``, classified by
        CLIP crops; :func:`ovlab.gkc.two_stage_eval.evaluate_two_stage`)."""
        two = stage.cfg.two_stage
        if not two.enabled:
            return super().evaluate(stage, built, device, progress, cache_dir)
        from ovlab.gkc.two_stage_eval import crop_clip_from_params, evaluate_two_stage

        ev = stage.cfg.eval
        rep = evaluate_two_stage(None if two.proposals == "oracle" else built.model, built.clip, ev, two,
                                 crop_clip=crop_clip_from_params(two, stage, built.clip), device=device,
                                 root=stage.path(ev.root) if ev.root else None, cache_dir=cache_dir, progress=progress)
        summary = {"dataset": rep.dataset, "num_images": rep.num_images, **rep.summary,
                   "two_stage": two.model_dump(mode="json")}
        return summary, rep.per_class

    def objective(self, stage, built: Built, vocab):
        """:class:`ovlab.gkc.criterion.GkcObjective` when a GKC term is on, else the Mask2Former baseline."""
        return build_objective(stage, built, vocab)
