"""GKC Eq. 4 total loss with deep supervision, presets, and the proposed config sections."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from ovlab.config.gkc import DistillParams, GkcLossParams, GroundingParams, LossWeightsParams, TextDiversificationParams
from ovlab.losses.total import CODE_WEIGHTS, PAPER_WEIGHTS, gkc_loss, loss_weights, total_loss


def test_presets_match_paper_and_code():
    assert loss_weights("paper") == {"loss_mask": 5.0, "loss_dice": 5.0, "loss_ce": 2.0, "loss_syn": 2.0,
                                     "loss_grounding": 2.0, "loss_kd": 2.0, "loss_text_kd": 2.0}
    code = loss_weights("code")
    assert (code["loss_mask"], code["loss_dice"], code["loss_ce"], code["loss_syn"], code["loss_grounding"],
            code["loss_kd"]) == (5.0, 5.0, 2.0, 10.0, 10.0, 10.0)
    assert loss_weights("code", loss_kd=2.0)["loss_kd"] == 2.0 and CODE_WEIGHTS["loss_kd"] == 10.0
    with pytest.raises(ValueError, match="unknown loss terms"):
        loss_weights("paper", loss_foo=1.0)
    with pytest.raises(ValueError, match="preset"):
        loss_weights("mine")


def test_eq4_by_hand():
    assert gkc_loss(1.0, 2.0, 3.0, 4.0) == 5 * 1 + 2 * 2 + 2 * 3 + 2 * 4
    assert gkc_loss(1.0, 2.0, 3.0, 4.0, lambda_m=1, lambda_c=0, lambda_g=10, lambda_kd=0.5) == 1 + 30 + 2


def test_total_sums_every_layer_with_the_same_weights():
    x = torch.tensor(1.0, requires_grad=True)
    layers = [
        {"loss_mask": 0.1 * x, "loss_dice": 0.2 * x, "loss_ce": 0.3 * x},                        # aux 0
        {"loss_mask": 0.4 * x, "loss_dice": 0.5 * x, "loss_ce": 0.6 * x, "loss_kd": 0.7 * x},    # aux 1
        {"loss_mask": 1.0 * x, "loss_dice": 2.0 * x, "loss_ce": 3.0 * x, "loss_kd": 4.0 * x,     # final
         "loss_grounding": 5.0 * x},
    ]
    out = total_loss(layers, PAPER_WEIGHTS)
    expected = (5 * 0.1 + 5 * 0.2 + 2 * 0.3) + (5 * 0.4 + 5 * 0.5 + 2 * 0.6 + 2 * 0.7) + \
               (5 * 1 + 5 * 2 + 2 * 3 + 2 * 4 + 2 * 5)
    assert float(out.total.detach()) == pytest.approx(expected)
    assert set(out.terms) == {"loss_mask_0", "loss_dice_0", "loss_ce_0", "loss_mask_1", "loss_dice_1", "loss_ce_1",
                              "loss_kd_1", "loss_mask", "loss_dice", "loss_ce", "loss_kd", "loss_grounding"}
    assert out.weights["loss_kd_1"] == 2.0
    out.total.backward()
    assert float(x.grad) == pytest.approx(expected)
    logs = out.log_values()
    assert logs["loss_total"] == pytest.approx(expected) and logs["loss_grounding_weighted"] == pytest.approx(10.0)
    assert "loss_mask_0_weighted" not in logs and "loss_text_kd" not in logs


def test_total_strictness_and_zero_weights():
    with pytest.raises(ValueError, match="'loss_new' .* has no weight"):
        total_loss([{"loss_new": torch.tensor(1.0)}], PAPER_WEIGHTS)
    out = total_loss([{"loss_new": torch.tensor(1.0), "loss_ce": torch.tensor(2.0)}], PAPER_WEIGHTS, strict=False)
    assert float(out.total) == 4.0 and out.weights["loss_new"] == 0.0
    with pytest.raises(ValueError, match="0-d tensor"):
        total_loss([{"loss_ce": torch.ones(2)}], PAPER_WEIGHTS)
    with pytest.raises(ValueError, match="at least one"):
        total_loss([], PAPER_WEIGHTS)


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


def test_end_to_end_backward_through_all_gkc_terms():
    """One tiny batch: TD (random), TGKD and grounding terms on two layers, summed and back-propagated."""
    from ovlab.losses.diversify import batch_columns, classification_loss, image_columns, sample_synonyms
    from ovlab.losses.distill import distill_loss
    from ovlab.losses.grounding import grounding_loss
    from ovlab.vocab.synonym_vocab import SynonymVocabulary

    vocab = SynonymVocabulary.from_table({"person": ["person", "human"], "car": ["car", "auto"]})
    g = torch.Generator().manual_seed(0)
    names = sample_synonyms([0, 1], [[0.3, 0.7], [0.5, 0.5]], vocab, generator=g)
    columns = batch_columns([image_columns([0, 1], names, vocab)])
    s = torch.nn.Parameter(torch.tensor(1.0))
    tau = torch.nn.Parameter(torch.tensor(14.0))
    q = torch.randn(1, 3, 8, generator=g, requires_grad=True)          # query embeddings
    bank = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1)   # 4 names + void
    layers = []
    for _ in range(2):
        logits = tau * torch.nn.functional.normalize(q, dim=-1) @ bank.T
        terms = classification_loss(logits, torch.tensor([[0, 1, 2]]), vocab, "random",
                                    name_targets=torch.tensor([[int(names[0]), int(names[1]), -1]]),
                                    columns=columns, keep_plain_ce=True)
        terms.update(distill_loss("text_guided", q[0, :2], torch.randn(2, 8, generator=g), [0, 0],
                                  text=bank[names], form="code", text_scale=s))
        terms["loss_grounding"] = grounding_loss(torch.randn(1, 2, 8, generator=g), torch.ones(1, 2, dtype=torch.bool),
                                                 q[:, :2], torch.ones(1, 2, dtype=torch.bool), tau)
        layers.append(terms)
    out = total_loss(layers, loss_weights("code"))
    out.total.backward()
    assert torch.isfinite(out.total) and q.grad.abs().sum() > 0 and s.grad is not None and tau.grad is not None
