"""ovlab.widgets: the curator's save (round trip, validation, conflicts), the explorer's cache (counted
backbone calls), the free-vocabulary syntax, and the notebook hooks (scratch outputs, clean save)."""

from __future__ import annotations

import difflib
import json
import shutil

import nbformat
import numpy as np
import pytest

from tests.conftest import REPO, tiny_tgkd_stage

OVERRIDES = REPO / "ovlab" / "vocab" / "curation" / "coco_panoptic_133.yaml"


@pytest.fixture()
def curator(tmp_path, wordnet):
    from ovlab.config import SynonymsParams
    from ovlab.data.categories import load_categories
    from ovlab.data.names import normalize_class_name
    from ovlab.widgets.curator import OverridesEditor, SynonymCurator

    copy = tmp_path / "coco_panoptic_133.yaml"
    shutil.copy(OVERRIDES, copy)
    raw = {normalize_class_name(c.name): c.name for c in load_categories("coco_panoptic_133")}
    return SynonymCurator(OverridesEditor(copy, list(raw), wordnet, SynonymsParams(), raw))


def _comments(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.lstrip().startswith("#")]


def test_save_changes_only_the_touched_entry_and_keeps_comments(curator):
    ed = curator.editor
    before = ed.path.read_text()
    assert ed.synonyms("car").names == ["car", "auto", "automobile", "motorcar"]
    ed.apply("drop", "car", "auto")        # a WordNet lemma kept so far -> into remove
    ed.apply("keep", "car", "machine")     # a curated removal undone -> out of remove
    ed.apply("add", "car", "sedan")
    ed.save()
    after = ed.path.read_text()
    diff = [ln for ln in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert diff == ["-    remove: [machine]", "+    remove: [auto]", "+    add: [sedan]"]
    assert "    add: [sedan]" in after.split("  car:\n", 1)[1].split("  motorcycle:", 1)[0]  # in the car entry
    assert _comments(after) == _comments(before)
    assert ed.synonyms("car").names == ["car", "automobile", "machine", "motorcar", "sedan"]


def test_save_twice_with_a_manual_edit_between_keeps_the_edit_and_comments(curator):
    from ovlab.widgets.curator import CurationConflictError

    ed = curator.editor
    ed.apply("drop", "bus", "motorbus")
    ed.save()
    text = ed.path.read_text()
    manual = text.replace('note: "railway train only', 'note: "EDITED BY HAND railway train only') + "# a new comment\n"
    ed.path.write_text(manual)
    ed.apply("add", "truck", "pickup truck")
    with pytest.raises(CurationConflictError, match="changed on disk"):
        ed.save()
    assert ed.path.read_text() == manual          # refused: nothing written
    assert ed.reload() == []                      # the unsaved change is replayed on the new file
    ed.save()
    final = ed.path.read_text()
    assert "EDITED BY HAND railway train only" in final and final.endswith("# a new comment\n")
    assert _comments(final) == _comments(manual)
    assert "remove: [autobus, charabanc, coach, double-decker, jitney, omnibus, passenger vehicle, motorbus]" in final
    assert "add: [lorry, pickup truck]" in final


def test_invalid_document_is_not_written(curator):
    from ovlab.vocab.overrides import CurationError

    ed = curator.editor
    before = ed.path.read_bytes()
    ed.doc["classes"]["not a coco class"] = {"add": ["x"]}
    with pytest.raises(CurationError, match="not a coco class: not a class of the vocabulary"):
        ed.save()
    assert ed.path.read_bytes() == before


def test_sense_toggle_and_filters(curator):
    ed = curator.editor
    assert "classes with 1 name" in curator.FILTERS
    single = curator.classes("classes with 1 name")
    assert "stop sign" in single and "car" not in single
    ed.apply("drop_sense", "car", "car.n.01")
    assert ed.synonyms("car").senses == [] and ed.synonyms("car").names == ["car"]
    ed.apply("keep_sense", "car", "car.n.01")
    assert ed.synonyms("car").senses == ["car.n.01"]
    assert curator.classes("edited classes") == ["car"]
    with pytest.raises(ValueError, match="not a noun sense"):
        ed.apply("keep_sense", "car", "dog.n.01")


def test_mean_synonym_scores(tmp_path):
    from ovlab.widgets.curator import mean_synonym_scores

    p = tmp_path / "s.json"
    p.write_text(json.dumps({"1": {"5": {"class": "car", "scores": {"car": 0.6, "auto": 0.4}}},
                             "2": {"7": {"class": "car", "scores": {"car": 0.2, "auto": 0.8}}}}))
    assert mean_synonym_scores(p) == {"car": pytest.approx({"car": 0.4, "auto": 0.6})}
    assert mean_synonym_scores(tmp_path / "absent.json") == {}


def test_parse_vocabulary():
    from ovlab.widgets.explorer import parse_vocabulary

    assert parse_vocabulary("a, b|b2, c") == [["a"], ["b", "b2"], ["c"]]
    assert parse_vocabulary(" sofa |  couch ") == [["sofa", "couch"]]
    for bad in ("", "a,,b", "a||b", "cat, cat", "a, b|A"):
        with pytest.raises(ValueError):
            parse_vocabulary(bad)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """An (untrained) tiny GKC segmenter saved as the engine saves one, read back by from_checkpoint."""
    import torch

    from ovlab.engine import checkpoint as ckpt
    from ovlab.segmenter.build import build

    out = tmp_path_factory.mktemp("explorer")
    stage = tiny_tgkd_stage(out, out)
    built = build(stage)
    path = out / "model.pt"
    ckpt.save(path, {"format": ckpt.FORMAT, "stage": "tgkd", "section": stage.cfg.model_dump(mode="json"),
                     "base": stage.base.model_dump(mode="json"), "model": built.model.state_dict()})
    torch.manual_seed(0)
    return path


def test_explorer_caches_the_backbone_and_matches_an_uncached_run(tiny_checkpoint):
    import torch.nn.functional as F

    from ovlab.segmenter.evaluate import prepare_image
    from ovlab.widgets.explorer import Explorer, Knobs

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    ex = Explorer()
    r1 = ex.run(tiny_checkpoint, img, "sky, grass|lawn, car", Knobs(short_side=64))
    assert ex.backbone_calls == 1
    r2 = ex.run(tiny_checkpoint, img, "sky, grass|lawn, car", Knobs(short_side=64, templates="photo"))
    r3 = ex.run(tiny_checkpoint, img, "dog, road", Knobs(short_side=64))
    assert ex.backbone_calls == 1 and ex.runs == 3       # knob and vocabulary changes: backbone cached
    assert ex.run(tiny_checkpoint, img, "sky, grass|lawn, car", Knobs(short_side=64)) is r1  # result cache
    ex.run(tiny_checkpoint, img[::-1].copy(), "dog, road", Knobs(short_side=64))
    assert ex.backbone_calls == 2                        # a new image runs it
    ex.run(tiny_checkpoint, img, "dog, road", Knobs(short_side=96))
    assert ex.backbone_calls == 3                        # so does a new input size

    # the cached path gives what an uncached segment gives
    built = ex.model(tiny_checkpoint)
    net = built.model
    from ovlab.segmenter.vocabulary import build_vocabulary

    vocab = build_vocabulary(built.clip, ["dog", "road"])
    x, (h, w) = prepare_image(img, "short_side", 64, 256)
    scores = F.interpolate(net.segment(x, vocab.text, vocab.class_index, 2)[..., :h, :w], size=img.shape[:2],
                           mode="bilinear", align_corners=False)[0]
    assert np.array_equal(r3.labels, scores.argmax(0).numpy())
    assert r3.areas == pytest.approx({c: float((r3.labels == k).mean() * 100) for k, c in enumerate(["dog", "road"])},
                                     abs=0.01)
    assert r2.classes == ["sky", "grass", "car"] and r2.top3.shape == (3, 70, 90)
    top = r3.at(5, 7)
    assert top[0][0] == ["dog", "road"][r3.labels[7, 5]] and top[0][1] >= top[1][1]
    with pytest.raises(IndexError):
        r3.at(90, 0)


def test_explorer_widget_run_and_static(tiny_checkpoint, capsys):
    from ovlab.widgets.explorer import Explorer, ExplorerWidget

    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    w = ExplorerWidget(Explorer(), checkpoints=[tiny_checkpoint], images=[("random", img)], vocabulary="a, b|c")
    w.widget()
    w.short_side.value = 64
    res = w.run()
    assert res is not None and w.overlay.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "done (backbone run)" in w.status.value and "<td>a</td>" in w.areas.value
    w.templates.value = "photo"                          # a knob change re-runs from the cache
    assert "backbone cached" in w.status.value and w.explorer.backbone_calls == 1
    assert w.static(knobs=w.knobs()) is not None


def test_live_mode_follows_papermill():
    from ovlab.widgets.display import live_mode

    assert live_mode(None, None) and not live_mode(None, {"profile": "embedded"})
    assert live_mode(True, {"x": 1}) and not live_mode(False, None)


def test_scratch_stage_redirects_outputs_only():
    from ovlab.config import load_params
    from ovlab.notebook import scratch_stage

    stage = load_params(REPO / "params.yaml").stage("synonyms")
    hand = scratch_stage(stage, ("output", "metrics", "report"), by_hand=True)
    assert hand.cfg.output == ".cache/ovlab/scratch/results/synonyms/coco_panoptic_133.json"
    assert hand.cfg.overrides == stage.cfg.overrides                # inputs untouched
    assert scratch_stage(stage, ("output",), by_hand=False) is stage  # papermill: the DVC outputs
    assert scratch_stage(stage, ("output",), scratch=False, by_hand=True) is stage


def test_pre_save_hook_keeps_the_committed_bytes(tmp_path):
    from ovlab.notebook import pre_save_hook

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "notebooks").mkdir()
    src = REPO / "notebooks" / "01_synonym_curation.ipynb"
    committed = src.read_text()
    nb = json.loads(committed)
    # what a JupyterLab run and save adds
    nb["metadata"]["language_info"].update({"version": "3.11.2", "mimetype": "text/x-python"})
    nb["metadata"]["kernelspec"]["display_name"] = "Python 3 (ipykernel)"
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    for i, c in enumerate(nb["cells"]):
        c["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01"}
        if c["cell_type"] == "code":
            c["execution_count"] = i
            c["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]
    model = {"type": "notebook", "content": nb}
    other = {"type": "notebook", "content": json.loads(json.dumps(nb))}

    class CM:
        root_dir = str(tmp_path)

    pre_save_hook(model, "notebooks/01_synonym_curation.ipynb", contents_manager=CM())
    assert nbformat.writes(nbformat.from_dict(model["content"])) + "\n" == committed
    pre_save_hook(other, "mine.ipynb", contents_manager=CM())       # not a stage notebook: saved as is
    assert other["content"]["cells"][1]["outputs"]


def test_curator_form_toggles_saves_and_reports_conflicts(curator):
    curator.widget()
    curator.selector.value = "car"
    box = next(b for b in curator.names_box.children if b.description.startswith("auto "))
    box.value = False                                    # uncheck = drop
    assert curator.editor.ops == [("drop", "car", "auto")]
    curator.save_button.click()
    assert "Saved" in curator.status.value and "remove: [machine, auto]" in curator.editor.path.read_text()
    curator.editor.path.write_text(curator.editor.path.read_text() + "# edited elsewhere\n")
    curator.new_name.value = "sedan"
    curator.add_button.click()
    curator.save_button.click()
    assert "Not saved" in curator.status.value and "changed on disk" in curator.status.value
    curator.reload_button.click()
    curator.save_button.click()
    text = curator.editor.path.read_text()
    assert "Saved" in curator.status.value and "add: [sedan]" in text and text.endswith("# edited elsewhere\n")
