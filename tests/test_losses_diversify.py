"""GKC text diversification (GKC §3.1, Tab. 7a): vocabulary, Random sampling/columns, GroupAvg/Max, the CE terms.

Expected values are written out by hand or with plain Python math."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ovlab.gkc.diversify import (
    batch_columns,
    canonical_logits,
    classification_loss,
    column_logits,
    column_targets,
    group_logits,
    image_columns,
    sample_synonyms,
)
from ovlab.vocab.synonym_vocab import (
    SynonymVocabulary,
    load_synonym_scores,
    load_synonym_vocabulary,
)

TABLE = {"person": ["person", "human", "man"], "car": ["car", "auto"], "sky": ["sky"]}
# name indices: person 0, human 1, man 2, car 3, auto 4, sky 5; K = 3, N = 6; void column = 6
VOID_CLASS = 3


@pytest.fixture()
def vocab() -> SynonymVocabulary:
    return SynonymVocabulary.from_table(TABLE)


def ce(logits: list[float], target: int) -> float:
    return -logits[target] + math.log(sum(math.exp(z) for z in logits))


def val(t: torch.Tensor) -> float:
    return float(t.detach())


def weighted_mean(rows: list[tuple[float, float]]) -> float:
    """rows of (weight, ce) -> Σ w·ce / Σ w (PyTorch's weighted mean)."""
    return sum(w * c for w, c in rows) / sum(w for w, _ in rows)


# ------------------------------------------------------------------------------------ vocabulary
def test_vocabulary_layout(vocab):
    assert vocab.num_classes == 3 and vocab.num_names == 6
    assert vocab.names == ("person", "human", "man", "car", "auto", "sky")
    assert vocab.name_to_class == (0, 0, 0, 1, 1, 2)
    assert vocab.canonical_index == (0, 3, 5)
    assert vocab.class_names(1) == (3, 4)
    assert vocab.name_index("car", "auto") == 4
    assert vocab.name_to_class_tensor().tolist() == [0, 0, 0, 1, 1, 2]
    with pytest.raises(KeyError, match="no name 'bike'"):
        vocab.name_index("car", "bike")


def test_vocabulary_order_follows_classes_argument():
    v = SynonymVocabulary.from_table(TABLE, classes=["sky", "car"])
    assert v.names == ("sky", "car", "auto") and v.name_to_class == (0, 1, 1)
    with pytest.raises(ValueError, match="no synonym set for classes \\['tree'\\]"):
        SynonymVocabulary.from_table(TABLE, classes=["tree"])


@pytest.mark.parametrize("classes, names, owner, match", [
    (("car", "person"), ("car",), (0,), "has no name"),
    (("car",), ("auto", "car"), (0, 0), "expected the canonical name"),
    (("car", "sky"), ("car", "sky", "auto"), (0, 1, 0), "not contiguous"),
    (("car",), ("car", "Car"), (0, 0), "repeats a name"),
    (("car",), ("car",), (1,), "outside \\[0, 1\\)"),
    (("car",), ("car", "auto"), (0,), "1 entries for 2 names"),
])
def test_vocabulary_rejects_bad_layouts(classes, names, owner, match):
    with pytest.raises(ValueError, match=match):
        SynonymVocabulary(classes, names, owner)


def test_load_vocabulary_and_scores(tmp_path, vocab):
    syn = tmp_path / "syn.json"
    syn.write_text(json.dumps(TABLE))
    assert load_synonym_vocabulary(syn) == vocab
    scores = {"7": {"101": {"class": "person", "category_id": 1, "iscrowd": False, "trivial": False,
                            "scores": {"man": 0.3, "person": 0.2, "human": 0.5}},   # file order differs
                    "102": {"class": "sky", "category_id": 187, "trivial": True, "scores": {"sky": 1.0}}}}
    sp = tmp_path / "scores.json"
    sp.write_text(json.dumps(scores))
    table = load_synonym_scores(sp, vocab)
    assert len(table) == 2 and (7, 101) in table
    assert table.get(7, 101).tolist() == pytest.approx([0.2, 0.5, 0.3])   # vocabulary order
    assert table.class_of(7, 101) == 0
    assert table.get(7, 999) is None


@pytest.mark.parametrize("entry, match", [
    ({"class": "tree", "scores": {"tree": 1.0}}, "not in the synonym vocabulary"),
    ({"class": "car", "scores": {"car": 0.5, "bike": 0.5}}, "differ from the class's names"),
    ({"class": "car", "scores": {"car": 1.5, "auto": -0.5}}, "finite and >= 0"),
    ({"scores": {"car": 1.0}}, "'class' and 'scores'"),
])
def test_load_scores_errors_name_the_segment(tmp_path, vocab, entry, match):
    sp = tmp_path / "scores.json"
    sp.write_text(json.dumps({"5": {"9": entry}}))
    with pytest.raises(ValueError, match=match) as err:
        load_synonym_scores(sp, vocab)
    assert "image 5 segment 9" in str(err.value) and str(sp) in str(err.value)


def test_loaders_missing_files(tmp_path, vocab):
    with pytest.raises(FileNotFoundError, match="synonyms"):
        load_synonym_vocabulary(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="synonym_score"):
        load_synonym_scores(tmp_path / "nope.json", vocab)


def test_loaders_read_the_stage_outputs_when_present(repo_root):
    syn = repo_root / "results/synonyms/coco_panoptic_133.json"
    sc = repo_root / "results/synonym_score/coco_panoptic_133.json"
    if not (syn.is_file() and sc.is_file()):
        pytest.skip("stage outputs not produced in this checkout (dvc repro synonyms synonym_score)")
    v = load_synonym_vocabulary(syn)
    assert v.num_classes == 133 and v.names[0] == "person"
    table = load_synonym_scores(sc, v)
    for (_, _), (k, s) in list(table.table.items())[:50]:
        assert len(s) == len(v.class_names(k)) and sum(s) == pytest.approx(1.0, abs=1e-4)


# ------------------------------------------------------------------------------- Random sampling
def test_paper_mode_draws_with_score_probability(vocab):
    n = 20000
    g = torch.Generator().manual_seed(0)
    names = sample_synonyms([0] * n, [torch.tensor([0.2, 0.5, 0.3])] * n, vocab, mode="paper", generator=g)
    freq = torch.bincount(names, minlength=6).double() / n
    assert freq[:3].tolist() == pytest.approx([0.2, 0.5, 0.3], abs=0.02)
    assert freq[3:].sum() == 0


def test_paper_mode_renormalises_scores(vocab):
    n = 20000
    g = torch.Generator().manual_seed(1)
    names = sample_synonyms([1] * n, [[2.0, 6.0]] * n, vocab, mode="paper", generator=g)
    freq = torch.bincount(names, minlength=6).double() / n
    assert freq[3:5].tolist() == pytest.approx([0.25, 0.75], abs=0.02)


def test_code_mode_is_uniform_above_threshold(vocab):
    n = 20000
    g = torch.Generator().manual_seed(2)
    # person: 0.05 (≤ 0.1, out), 0.85, 0.10 (exactly the threshold: out, strict ">")
    names = sample_synonyms([0] * n, [[0.05, 0.85, 0.10]] * n, vocab, mode="code", generator=g)
    assert set(names.tolist()) == {1}
    names = sample_synonyms([0] * n, [[0.05, 0.50, 0.45]] * n, vocab, mode="code", generator=g)
    freq = torch.bincount(names, minlength=6).double() / n
    assert freq[0] == 0 and freq[1:3].tolist() == pytest.approx([0.5, 0.5], abs=0.02)


def test_sampling_is_reproducible_and_seed_dependent(vocab):
    classes = [0, 1, 0, 2, 1, 0] * 10
    scores = [[0.2, 0.5, 0.3], [0.4, 0.6], [0.1, 0.1, 0.8], None, [0.5, 0.5], [0.3, 0.3, 0.4]] * 10
    draw = lambda seed: sample_synonyms(classes, scores, vocab, mode="paper",  # noqa: E731
                                        generator=torch.Generator().manual_seed(seed))
    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))


def test_sampling_fallbacks(vocab):
    g = torch.Generator().manual_seed(0)
    # single-name class and unscored segment -> canonical name
    assert sample_synonyms([2, 0], [[1.0], None], vocab, generator=g).tolist() == [5, 0]
    # code: nothing above 0.1 -> plain (canonical) or argmax (second name)
    low = [[0.05, 0.09, 0.03]]
    assert sample_synonyms([0], low, vocab, mode="code", generator=g).tolist() == [0]
    assert sample_synonyms([0], low, vocab, mode="code", fallback="argmax", generator=g).tolist() == [1]
    # paper: all-zero scores -> fallback
    assert sample_synonyms([1], [[0.0, 0.0]], vocab, mode="paper", generator=g).tolist() == [3]
    assert sample_synonyms([], [], vocab, generator=g).tolist() == []


@pytest.mark.parametrize("classes, scores, kw, match", [
    ([0], [[0.5, 0.5]], {}, "2 scores for 3 names"),
    ([0], [[0.5, -0.1, 0.6]], {}, "finite and >= 0"),
    ([0], [[0.5, float("nan"), 0.6]], {}, "finite and >= 0"),
    ([3], [None], {}, "must be in \\[0, 3\\)"),
    ([0, 1], [None], {}, "1 score vectors for 2 segments"),
    ([0], [None], {"mode": "greedy"}, "random mode"),
    ([0], [None], {"fallback": "random"}, "fallback"),
])
def test_sampling_errors(vocab, classes, scores, kw, match):
    with pytest.raises(ValueError, match=match):
        sample_synonyms(classes, scores, vocab, **kw)


# ------------------------------------------------------------------------------- Random columns
def test_image_columns_follow_gkc_mapper(vocab):
    # segments in order: (person, human) (person, person) (person, man) (car, car) (person, human) (car, auto)
    cols = image_columns([0, 0, 0, 1, 0, 1], [1, 0, 2, 3, 1, 4], vocab)
    # person's column becomes "human"; "person" and "man" are appended; car stays "car" (drawn as
    # itself, marked changed) so "auto" is appended too.
    assert cols.names.tolist() == [1, 3, 5, 0, 2, 4]
    assert cols.segment_columns.tolist() == [0, 3, 4, 1, 0, 5]


def test_image_columns_reject_foreign_names(vocab):
    with pytest.raises(ValueError, match="not a name of class 1"):
        image_columns([1], [2], vocab)


def test_column_logits_and_targets(vocab):
    a = image_columns([0], [2], vocab)           # person -> man: columns [man, car, sky]
    b = image_columns([1, 1], [4, 3], vocab)     # car -> auto, then car appended: [person, auto, sky, car]
    batch = batch_columns([a, b])
    assert batch.names.tolist() == [[2, 3, 5, -1], [0, 4, 5, 3]] and batch.void_index == 4
    name_logits = torch.arange(14, dtype=torch.float32).reshape(2, 1, 7)   # image 0: 0..6, image 1: 7..13
    out = column_logits(name_logits, batch)
    assert out[0, 0].tolist() == [2.0, 3.0, 5.0, float("-inf"), 6.0]
    assert out[1, 0].tolist() == [7.0, 11.0, 12.0, 10.0, 13.0]
    class_t = torch.tensor([[0, VOID_CLASS, -100], [1, 1, VOID_CLASS]])
    name_t = torch.tensor([[2, -1, -1], [4, 3, -1]])
    assert column_targets(class_t, name_t, batch, vocab).tolist() == [[0, 4, -100], [1, 3, 4]]
    with pytest.raises(ValueError, match="not among its image's columns"):
        column_targets(torch.tensor([[0, 3, 3], [3, 3, 3]]), torch.tensor([[1, 0, 0], [0, 0, 0]]), batch, vocab)
    with pytest.raises(ValueError, match="not a name of its class"):
        column_targets(torch.tensor([[0, 3, 3], [3, 3, 3]]), torch.tensor([[3, 0, 0], [0, 0, 0]]), batch, vocab)


# -------------------------------------------------------------------------------- GroupAvg / Max
ROW = [1.0, 3.0, 2.0, 0.5, 1.5, -1.0, 0.25]   # person names 1, 3, 2; car 0.5, 1.5; sky -1; void 0.25


def test_group_logits_by_hand():
    x = torch.tensor([ROW], requires_grad=True)
    idx = [0, 0, 0, 1, 1, 2]
    avg = group_logits(x, idx, "mean")
    assert avg.tolist() == [pytest.approx([2.0, 1.0, -1.0, 0.25])]
    mx = group_logits(x, idx, "max")
    assert mx.tolist() == [[3.0, 1.5, -1.0, 0.25]]
    mx.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]]
    x.grad = None
    avg.sum().backward()
    assert x.grad.tolist() == [pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.5, 0.5, 1.0, 1.0])]
    no_void = group_logits(x[:, :6], idx, "mean", void=False)
    assert no_void.shape == (1, 3)


def test_group_logits_errors():
    x = torch.tensor([ROW])
    with pytest.raises(ValueError, match=r"classes \[3\] have no name"):
        group_logits(x, [0, 0, 0, 1, 1, 2], "max", num_classes=4)
    with pytest.raises(ValueError, match="7 columns"):
        group_logits(x, [0, 0, 1], "max")
    with pytest.raises(ValueError, match="reduce"):
        group_logits(x, [0, 0, 0, 1, 1, 2], "sum")


def test_canonical_logits(vocab):
    assert canonical_logits(torch.tensor([ROW]), vocab).tolist() == [[1.0, 0.5, -1.0, 0.25]]


# ------------------------------------------------------------------------------ the CE terms
def _batch():
    """B = 1, Q = 2: query 0 matched to a person segment (drawn name 'man'), query 1 unmatched."""
    logits = torch.tensor([[ROW, [0.0] * 7]], requires_grad=True)
    class_t = torch.tensor([[0, VOID_CLASS]])
    return logits, class_t


def test_none_strategy_by_hand(vocab):
    logits, class_t = _batch()
    expected = weighted_mean([(1.0, ce([1.0, 0.5, -1.0, 0.25], 0)), (0.1, math.log(4))])
    out = classification_loss(logits, class_t, vocab, "none")
    assert set(out) == {"loss_ce"} and val(out["loss_ce"]) == pytest.approx(expected, rel=1e-6)
    # class logits (K + 1 columns) are accepted for "none"
    out2 = classification_loss(canonical_logits(logits, vocab), class_t, vocab, "none")
    assert val(out2["loss_ce"]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("strategy, row0", [
    ("group_avg", [2.0, 1.0, -1.0, 0.25]),
    ("group_max", [3.0, 1.5, -1.0, 0.25]),
])
def test_group_strategies_by_hand(vocab, strategy, row0):
    logits, class_t = _batch()
    syn = weighted_mean([(1.0, ce(row0, 0)), (0.1, math.log(4))])
    plain = weighted_mean([(1.0, ce([1.0, 0.5, -1.0, 0.25], 0)), (0.1, math.log(4))])
    out = classification_loss(logits, class_t, vocab, strategy)
    assert set(out) == {"loss_ce"} and val(out["loss_ce"]) == pytest.approx(syn, rel=1e-6)
    both = classification_loss(logits, class_t, vocab, strategy, keep_plain_ce=True)
    assert val(both["loss_ce"]) == pytest.approx(plain, rel=1e-6)
    assert val(both["loss_syn"]) == pytest.approx(syn, rel=1e-6)


def test_random_strategy_by_hand(vocab):
    logits, class_t = _batch()
    columns = batch_columns([image_columns([0], [2], vocab)])   # person -> man: [man, car, sky]
    name_t = torch.tensor([[2, -1]])
    # query 0: columns (man 2.0, car 0.5, sky -1.0, void 0.25), target 0; query 1: uniform, void
    syn = weighted_mean([(1.0, ce([2.0, 0.5, -1.0, 0.25], 0)), (0.1, math.log(4))])
    out = classification_loss(logits, class_t, vocab, "random", name_targets=name_t, columns=columns)
    assert set(out) == {"loss_ce"} and val(out["loss_ce"]) == pytest.approx(syn, rel=1e-6)
    out["loss_ce"].backward()
    assert logits.grad[0, 0, 1] == 0 and logits.grad[0, 0, 2] != 0   # 'human' is not a column


def test_random_padding_columns_get_no_probability(vocab):
    # image 0 has 3 columns, image 1 has 4: image 0's padded column must not change its loss
    logits = torch.zeros(2, 1, 7)
    logits[0, 0, :] = torch.tensor(ROW)
    columns = batch_columns([image_columns([0], [2], vocab), image_columns([1, 1], [4, 3], vocab)])
    class_t = torch.tensor([[0], [-100]])
    out = classification_loss(logits, class_t, vocab, "random", name_targets=torch.tensor([[2], [0]]),
                              columns=columns)
    assert val(out["loss_ce"]) == pytest.approx(ce([2.0, 0.5, -1.0, 0.25], 0), rel=1e-6)


def test_all_ignored_gives_connected_zero(vocab):
    logits = torch.randn(1, 2, 7, requires_grad=True)
    out = classification_loss(logits, torch.full((1, 2), -100), vocab, "group_max", keep_plain_ce=True)
    assert val(out["loss_ce"]) == 0.0 and val(out["loss_syn"]) == 0.0
    (out["loss_ce"] + out["loss_syn"]).backward()
    assert logits.grad is not None and not logits.grad.any()


def test_classification_loss_errors(vocab):
    logits, class_t = _batch()
    with pytest.raises(ValueError, match="TD strategy"):
        classification_loss(logits, class_t, vocab, "groupmax")
    with pytest.raises(ValueError, match="needs name_targets and columns"):
        classification_loss(logits, class_t, vocab, "random")
    with pytest.raises(ValueError, match="expected N\\+1 = 7"):
        classification_loss(logits[..., :5], class_t, vocab, "group_avg")


# ---------------------------------------------------------------------------- strategy objects
def test_strategy_objects_are_built_once_from_the_params(vocab):
    from types import SimpleNamespace

    from ovlab.gkc.diversify import (GroupMaxDiversification, NoDiversification, RandomDiversification,
                                     build_text_diversification)

    calls = []

    def params(strategy):
        return SimpleNamespace(strategy=strategy, random_mode="code", threshold=0.1, fallback="argmax",
                               keep_plain_ce=True)

    def syn():
        calls.append("synonyms")
        return vocab

    def bank(v):
        calls.append("bank")
        return torch.zeros(v.num_names, 4)

    def scores(v):
        calls.append("scores")
        return "table"

    none = build_text_diversification(params("none"), syn, bank, scores)
    assert isinstance(none, NoDiversification) and not none.enabled and calls == []  # no loader called
    assert none.training_text(torch.ones(3, 4)).shape == (3, 4) and none.columns([], None) is None
    gmax = build_text_diversification(params("group_max"), syn, bank, scores)
    assert isinstance(gmax, GroupMaxDiversification) and calls == ["synonyms", "bank"] and not gmax.draws
    assert gmax.training_text(torch.ones(3, 4)).shape == (vocab.num_names, 4)
    assert gmax.draw_names(torch.tensor([1, 0]), lambda: pytest.fail("scores read"), None).tolist() == [3, 0]
    rnd = build_text_diversification(params("random"), syn, bank, scores)
    assert isinstance(rnd, RandomDiversification) and rnd.draws and rnd.scores == "table"
    low = [[0.05, 0.08, 0.02]]  # nothing above 0.1: the argmax fallback
    assert rnd.draw_names(torch.tensor([0]), lambda: low, torch.Generator().manual_seed(0)).tolist() == [1]
    # the object's terms are the functional form's, bit for bit
    logits, class_t = _batch()
    got = gmax.loss(logits, class_t)
    ref = classification_loss(logits, class_t, vocab, "group_max", keep_plain_ce=True)
    assert set(got) == set(ref) == {"loss_ce", "loss_syn"} and all(torch.equal(got[k], ref[k]) for k in ref)
    with pytest.raises(ValueError, match="TD strategy"):
        build_text_diversification(params("groupmax"), syn, bank, scores)
