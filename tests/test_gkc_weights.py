"""GKC Eq. 4 weight presets (paper / code) and the strict GKC config sections."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ovlab.config.gkc import DistillParams, GkcLossParams, GroundingParams, LossWeightsParams, TextDiversificationParams
from ovlab.config.presets import CODE_WEIGHTS, PAPER_WEIGHTS, loss_weights


def test_presets_match_paper_and_code():
    assert loss_weights("paper") == {"loss_syn": 2.0, "loss_grounding": 2.0, "loss_kd": 2.0, "loss_text_kd": 2.0}
    code = loss_weights("code")
    assert (code["loss_syn"], code["loss_grounding"], code["loss_kd"]) == (10.0, 10.0, 10.0)
    # every entry drives the objective (mask, dice and the plain CE are weighted by loss.* / LOSS_PRESETS)
    assert set(LossWeightsParams().resolve()) == set(PAPER_WEIGHTS) == set(CODE_WEIGHTS)
    assert loss_weights("code", loss_kd=2.0)["loss_kd"] == 2.0 and CODE_WEIGHTS["loss_kd"] == 10.0
    with pytest.raises(ValueError, match="unknown loss terms"):
        loss_weights("paper", loss_foo=1.0)
    with pytest.raises(ValueError, match="preset"):
        loss_weights("mine")


def test_config_sections_default_to_off_with_the_papers_settings():
    p = GkcLossParams()
    assert (p.td.strategy, p.kd.mode, p.grounding.enabled) == ("none", "none", False)  # the baseline
    assert p.td.random_mode == "paper" and p.td.threshold == 0.1
    assert not p.td.keep_plain_ce
    assert (p.kd.form, p.kd.teacher, p.kd.student, p.kd.max_instances) == ("paper", "spatial", "prior", 200)
    assert (p.grounding.keep_prob, p.grounding.max_words, p.grounding.max_regions, p.grounding.validity) == (
        0.75, 5, 25, "and")
    assert p.weights.resolve() == {k: PAPER_WEIGHTS[k] for k in ('loss_syn', 'loss_grounding', 'loss_kd', 'loss_text_kd')}
    assert LossWeightsParams(preset="code", grounding=3.0).resolve()["loss_grounding"] == 3.0


@pytest.mark.parametrize("cls, kw", [
    (TextDiversificationParams, {"strategy": "groupmax"}),
    (TextDiversificationParams, {"threshold": 1.5}),
    (DistillParams, {"form": "l2"}),
    (DistillParams, {"max_instances": 0}),
    (GroundingParams, {"keep_prob": "0.5"}),
    (GroundingParams, {"extra": 1}),
])
def test_config_sections_are_strict(cls, kw):
    with pytest.raises(ValidationError):
        cls(**kw)


