"""The video task (GKC §3.4, §4.4, Tab. 3): params and rows, clip batches, objective, end-to-end run.

Runs on the generated embedded VIPSeg videos (``embedded_root``: 4 train + 2 val videos of 8 frames,
128×160) with a tiny model; the init checkpoint is a freshly built tiny image segmenter saved in the
engine's checkpoint format.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from ovlab.config import ParamsError, StageParams, load_params
from ovlab.config.base import BaseParams
from ovlab.config.video import TABLE3_ROWS, VideoStageParams, apply_dotted

from .conftest import REPO

TINY = dict(hidden_dim=32, mask_dim=32, num_queries=8, decoder_layers=2, encoder_layers=1, heads=4, ffn_dim=64,
            encoder_ffn_dim=64)


def _section(data_root, out, **over) -> dict:
    from ovlab.config.clip import ClipParams
    from ovlab.config.segmenter import ModelParams

    sec = VideoStageParams().model_dump(mode="json")
    sec["model"] = ModelParams(**TINY).model_dump(mode="json")  # the init checkpoint's (checked)
    sec["clip"] = ClipParams(model="ovlab-tiny-rn").model_dump(mode="json")
    sec["loss"]["num_points"] = 128
    sec["data"]["root"] = str(data_root / "vipseg")
    sec["augment"]["crop_size"] = 64
    sec["schedule"]["steps"] = [2]
    sec["train"].update(iterations=3, batch_size=2, checkpoint_every=3, log_every=1,
                        checkpoint_dir=str(out / "checkpoints"), init=str(out / "image.pt"))
    sec["eval"]["short_side"] = 64
    sec["output"] = str(out / "video")
    for k, v in over.items():
        sec = apply_dotted(sec, {k: v})
    return sec


def _stage(cfg) -> StageParams:
    return StageParams("video", BaseParams(), cfg, REPO, "<test>")


@pytest.fixture(scope="module")
def workdir(embedded_root, tmp_path_factory):
    """A folder with a tiny image checkpoint (``image.pt``) and a TD synonym table (``synonyms.json``)."""
    from ovlab.clip import load_clip
    from ovlab.config.clip import ClipParams
    from ovlab.config.segmenter import ModelParams
    from ovlab.config.tgkd import TgkdParams
    from ovlab.data.categories import load_categories
    from ovlab.engine import checkpoint as ckpt
    from ovlab.segmenter.model import build_segmenter
    from ovlab.data.names import split_multi_name

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("video_task")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip("ovlab-tiny-rn", pretrained=None)
    torch.manual_seed(0)
    image = build_segmenter(ModelParams(**TINY), 64, clip)
    section = TgkdParams(clip=ClipParams(model="ovlab-tiny-rn"), model=ModelParams(**TINY)).model_dump(mode="json")
    ckpt.save(out / "image.pt", {"format": ckpt.FORMAT, "stage": "tgkd", "section": section,
                                 "base": BaseParams().model_dump(mode="json"), "model": image.state_dict()})
    table = {}
    for c in load_categories("vipseg_124"):
        parts = split_multi_name(c.name)
        table[parts[0]] = [*parts, f"{parts[0]} thing"]
    (out / "synonyms.json").write_text(json.dumps(table))
    return out


# ------------------------------------------------------------------------------------ params
def test_params_yaml_video_section_and_rows(repo_root):
    params = load_params(repo_root / "params.yaml")
    v = params.video
    assert set(v.grids.tables["table3"]) == set(TABLE3_ROWS) and v.train.init == "results/tgkd/baseline/model.pt"
    assert v.model is None and v.clip is None  # the init checkpoint's architecture and CLIP (VideoTask.resolve)
    base, kd, kd_td = (v.grid_section("table3", r) for r in ("baseline", "kd", "kd_td"))
    assert (base.gkc.kd.mode, base.gkc.td.strategy) == ("none", "none")
    assert (kd.gkc.kd.mode, kd.gkc.td.strategy) == ("text_guided", "none")
    assert (kd_td.gkc.kd.mode, kd_td.gkc.td.strategy) == ("text_guided", "random")
    assert kd_td.output == "results/video/table3/kd_td" and kd_td.grids.cells() == []
    assert all(v.grid_model("table3", r) == ("own", f"table3/{r}") for r in TABLE3_ROWS)


def test_model_and_clip_come_from_the_init_checkpoint(embedded_root, workdir):
    from ovlab.config.segmenter import ModelParams
    from ovlab.video.task import resolve_from_init

    sec = _section(embedded_root, workdir)
    sec["model"] = sec["clip"] = None
    stage = resolve_from_init(_stage(VideoStageParams.model_validate(sec)))
    assert stage.cfg.model == ModelParams(**TINY) and stage.cfg.clip.model == "ovlab-tiny-rn"
    sec["train"]["init"] = None
    with pytest.raises(ValueError, match="train.init is null"):
        resolve_from_init(_stage(VideoStageParams.model_validate(sec)))


def test_paper_profile_is_the_papers_schedule(repo_root):
    import yaml

    paper = yaml.safe_load((repo_root / "profiles/paper.yaml").read_text())["video"]
    assert paper["train"]["batch_size"] == 16 and paper["train"]["iterations"] == 3000
    assert paper["optim"]["lr"] == 1e-4 and paper["schedule"]["steps"] == [2000]


def test_a_bad_row_is_a_params_error_naming_the_key(repo_root, tmp_path):
    text = (repo_root / "params.yaml").read_text()
    assert "kd: {gkc.kd.mode: text_guided}" in text
    (tmp_path / "params.yaml").write_text(text.replace("kd: {gkc.kd.mode: text_guided}", "kd: {gkc.kd.mod: text_guided}"))
    with pytest.raises(ParamsError, match=r"video\.grids\.table3\.kd\.gkc\.kd\.mod: unknown key"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(text.replace("kd: {gkc.kd.mode: text_guided}", "kd: {gkc.kd.mode: sideways}"))
    with pytest.raises(ParamsError, match=r"video\.grids\.table3\.kd\.gkc\.kd\.mode"):
        load_params(tmp_path / "params.yaml")
    with pytest.raises(KeyError, match="no cell 'nope'"):
        load_params(repo_root / "params.yaml").video.grid_section("table3", "nope")
    with pytest.raises(ValueError, match="grounding"):
        VideoStageParams.model_validate(apply_dotted(VideoStageParams().model_dump(mode="json"),
                                                     {"gkc.grounding.enabled": True}))


def test_init_checkpoint_must_match_the_model(embedded_root, workdir):
    from ovlab.video.task import check_init

    check_init(_stage(VideoStageParams.model_validate(_section(embedded_root, workdir))))
    bad = VideoStageParams.model_validate(_section(embedded_root, workdir, **{"model.num_queries": 4}))
    with pytest.raises(ValueError, match="model.num_queries"):
        check_init(_stage(bad))
    gone = VideoStageParams.model_validate(_section(embedded_root, workdir, **{"train.init": str(workdir / "no.pt")}))
    with pytest.raises(FileNotFoundError, match="tgkd_baseline"):
        check_init(_stage(gone))


# ------------------------------------------------------------------------------------ batches
def test_clip_batches_are_a_function_of_seed_and_iteration(embedded_root, workdir):
    from ovlab.video.data import IterationClips
    from ovlab.video.task import training_split

    cfg = VideoStageParams.model_validate(_section(embedded_root, workdir))
    split = training_split(_stage(cfg))
    assert split.name == "train_base_ignore" and split.num_classes == 112

    def make(rank=0, world=1, seed=0):
        return IterationClips(split, 4, seed, 2, 20, cfg.augment, rank, world, 10)

    a, b = make()[3], make()[3]
    assert a.images.shape == (4, 2, 3, 64, 64) and a.valid.shape == (4, 2, 64, 64)
    assert torch.equal(a.images, b.images) and all(torch.equal(x, y) for x, y in zip(a.masks, b.masks))
    assert a.videos == b.videos and a.frame_names == b.frame_names
    assert not torch.equal(make()[4].images, a.images) and not torch.equal(make(seed=1)[3].images, a.images)
    for m, lab, ids in zip(a.masks, a.labels, a.segment_ids):
        assert m.dtype == torch.bool and m.shape[:2] == (lab.numel(), 2) and ids.numel() == lab.numel()
        assert bool((lab < 112).all())
    assert all(torch.equal(v[0], v[1]) for v in a.valid)  # one crop / pad per clip, shared by its frames
    halves = [make(r, 2)[3] for r in (0, 1)]  # DDP: rank r takes slots r, r + 2
    assert torch.equal(torch.cat([halves[0].images[:1], halves[1].images[:1], halves[0].images[1:],
                                  halves[1].images[1:]]), a.images)
    frames = a.frames()
    assert frames.images.shape == (8, 3, 64, 64) and len(frames.masks) == 8
    assert torch.equal(frames.masks[3], a.masks[1][:, 1]) and torch.equal(frames.images[3], a.images[1, 1])
    assert [p.shape for p in a.present()] == [(n.numel(), 2) for n in a.labels]
    stacked = a.stacked_masks()[0]
    assert stacked.shape[1:] == (128, 64) and torch.equal(stacked[:, 64:], a.masks[0][:, 1])


# ------------------------------------------------------------------------------------ objective
def test_objective_terms_and_determinism(embedded_root, workdir):
    from ovlab.video.task import VideoTask

    sec = _section(embedded_root, workdir, **{"gkc.td.synonyms": str(workdir / "synonyms.json")})
    cfg = VideoStageParams.model_validate(sec).grid_section("table3", "kd_td")
    stage = _stage(cfg)
    task = VideoTask()
    built = task.build(stage)
    assert hasattr(built.model, "distill")
    vocab = task.vocabulary(stage, built.clip)
    assert len(vocab) == 112 and vocab.text.shape[0] > 112  # "_or_" classes have several names
    batch = task.batches(stage, vocab, 0, 1)[0]
    objective = task.objective(stage, built, vocab)
    outs = []
    for _ in range(2):  # the trainer seeds torch (matcher and point sampler) and the generator per iteration
        torch.manual_seed(7)
        outs.append(objective(built.model.train(), batch, vocab.text, torch.Generator().manual_seed(7)))
    terms = outs[0].terms
    assert {"loss_mask", "loss_dice", "loss_ce", "loss_kd", "loss_ce_0", "loss_kd_0"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values())
    assert torch.equal(outs[0].total(), outs[1].total())
    outs[0].total().backward()
    assert built.model.distill.proj[-1].weight.grad is not None
    triples = objective.frame_instances(batch, torch.Generator().manual_seed(0))
    present = batch.present()
    assert len(triples) == sum(int(p.sum()) for p in present) and triples == sorted(triples)


def test_auto_synonyms_split_multi_names_and_keep_the_first_sense():
    from ovlab.vocab.auto_synonyms import auto_synonym_table

    class Lemma:
        def __init__(self, name):
            self._name = name

        def name(self):
            return self._name

    class Synset:
        def __init__(self, name, lemmas):
            self._name, self._lemmas = name, [Lemma(x) for x in lemmas]

        def name(self):
            return self._name

        def lemmas(self):
            return self._lemmas

    class FakeWordNet:  # WordNet lists senses by frequency
        SENSES = {"pillar": [Synset("pillar.n.01", ["pillar", "column"]), Synset("pillar.n.02", ["mainstay"])],
                  "boat": [Synset("boat.n.01", ["boat"])]}

        def synsets(self, name, pos=None):
            return self.SENSES.get(name, [])

    wn = FakeWordNet()
    table = auto_synonym_table(["ship_or_boat", "Playground_slide", "pillar"], wn)
    assert table == {"ship": ["ship", "boat"], "Playground slide": ["Playground slide"], "pillar": ["pillar", "column"]}
    assert auto_synonym_table(["pillar"], wn, senses="all") == {"pillar": ["pillar", "column", "mainstay"]}


# ------------------------------------------------------------------------------------ end to end
def test_train_and_score_a_row_end_to_end(embedded_root, workdir):
    from ovlab.engine.checkpoint import init_from
    from ovlab.experiments.registry import from_checkpoint
    from ovlab.engine.trainer import train
    from ovlab.video.task import VideoTask, check_init
    from ovlab.video.model import VideoSegmenter

    sec = _section(embedded_root, workdir, **{"gkc.td.synonyms": str(workdir / "synonyms.json")})
    stage = _stage(VideoStageParams.model_validate(sec).grid_section("table3", "kd_td"))
    check_init(stage)
    task = VideoTask()
    missing, skipped = init_from(task.build(stage).model, workdir / "image.pt")
    assert missing and all(k.startswith("distill.") for k in missing) and skipped == []  # only the KD head is new
    result = train(stage, progress=False, task=task)
    m = json.loads((result.output / "metrics.json").read_text())
    assert m["stage"] == "video" and m["iterations"] == 3 and m["train_vocabulary"] == 112
    ev = m["eval"]
    assert ev["protocol"] == "split-vocab" and set(ev["protocols"]) == {"split-vocab", "generalized"}
    for p, r in ev["protocols"].items():
        assert r["protocol"] == p
        s, u, h = r["seen_miou"], r["unseen_miou"], r["harmonic"]
        if s is not None and u is not None and s + u > 0:
            assert h == pytest.approx(2 * s * u / (s + u))
    assert ev["frames"] == {"seen": 16, "unseen": 16} and ev["protocols"]["generalized"]["frames"] == {"all": 16}
    assert ev["num_classes"] == {"seen": 112, "unseen": 12}
    rows = (result.output / "per_class.csv").read_text().splitlines()
    assert rows[0].startswith("protocol,index,name,split,iou") and len(rows) == 1 + 2 * 124
    built = from_checkpoint(result.output / "model.pt", root=REPO)
    assert isinstance(built.model, VideoSegmenter) and hasattr(built.model, "distill")


def test_row_command_reports_errors(repo_root, capsys):
    from ovlab.experiments.grid import main

    assert main(["video", "table3/nope", "--params", str(repo_root / "params.yaml")]) == 1
    assert "no cell 'nope'" in capsys.readouterr().err
