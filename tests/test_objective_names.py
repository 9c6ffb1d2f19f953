"""Training on multi-name classes: the criterion sees class logits (max over a class's names, as GKC's
inference does: GKC `mask2former/maskformer_model_voca_dense_kd_syn.py` L778–781)."""

from __future__ import annotations

import torch

from ovlab.clip.text import TextBank
from ovlab.segmenter.objective import MaskObjective, class_predictions, first_name_rows
from ovlab.segmenter.vocabulary import Vocabulary
from ovlab.segmenter.model import Prediction


def _vocab(class_index: list[int], classes: list[str]) -> Vocabulary:
    m = len(class_index)
    bank = TextBank(classes, [f"n{i}" for i in range(m)], torch.tensor(class_index), torch.eye(m, 4), ["{}"])
    return Vocabulary(classes, bank, list(range(len(classes))))


def _pred(logits) -> Prediction:
    z = torch.tensor(logits, dtype=torch.float32)
    b, q = z.shape[:2]
    return Prediction(prior=torch.zeros(b, q, 2), embedding=torch.zeros(b, q, 4), masks=torch.zeros(b, q, 4, 4), logits=z)


def test_class_logits_are_the_max_over_each_class_names_void_last():
    # names: 0 -> class 1 ("sofa"), 1 -> class 0, 2 -> class 1 ("couch"); void last
    vocab = _vocab([1, 0, 1], ["cat", "sofa"])
    out = class_predictions([_pred([[[0.5, 2.0, 3.0, -1.0], [4.0, 1.0, -2.0, 0.25]]])], vocab)[0]
    assert torch.equal(out.logits, torch.tensor([[[2.0, 3.0, -1.0], [1.0, 4.0, 0.25]]]))
    assert torch.equal(first_name_rows(vocab), torch.tensor([1, 0]))


def test_one_name_per_class_leaves_the_predictions_alone():
    vocab = _vocab([0, 1], ["cat", "dog"])
    preds = [_pred([[[0.5, 2.0, 3.0]]])]
    assert class_predictions(preds, vocab) is preds


def test_mask_objective_with_a_two_name_class_equals_the_reduced_logits():
    from ovlab.config.segmenter import LossParams

    torch.manual_seed(0)
    vocab = _vocab([0, 1, 1], ["cat", "sofa"])
    names = torch.randn(1, 3, 4)  # B=1, Q=3, M=3 names + void
    masks = torch.randn(1, 3, 8, 8)
    reduced = torch.cat([names[..., :1], names[..., 1:3].amax(-1, keepdim=True), names[..., 3:]], -1)

    class Net:
        def __init__(self, logits):
            self.logits = logits

        def __call__(self, images, text):
            return [Prediction(torch.zeros(1, 3, 2), torch.zeros(1, 3, 4), masks, self.logits)]

    class B:
        images = torch.zeros(1, 3, 32, 32)
        labels = [torch.tensor([1])]
        masks = [(torch.arange(64).view(1, 8, 8) % 8 < 4).float()]

    loss = LossParams(num_points=16, deep_supervision=False)
    torch.manual_seed(1)  # the matcher's and the loss's points come from the global RNG (Mask2Former)
    got = MaskObjective(loss, vocab)(Net(names), B, vocab.text, torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    ref = MaskObjective(loss)(Net(reduced), B, vocab.text, torch.Generator().manual_seed(0))
    assert got.terms.keys() == ref.terms.keys()
    for k in ref.terms:
        assert torch.equal(got.terms[k], ref.terms[k]), k
    torch.manual_seed(1)
    plain = MaskObjective(loss)(Net(names[..., [0, 1, 3]]), B, vocab.text, torch.Generator().manual_seed(0))
    assert not torch.equal(plain.terms["loss_ce"], ref.terms["loss_ce"])  # "couch" (max) is not ignored
