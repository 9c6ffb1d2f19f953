"""VIPSeg reader, GKC's split builders (GKC ``datasets/prepare_vspw_novel_json.py``) and clip logic
(Video Mask2Former style).

Expected split counts come from the generator's specification (ovlab.data.procedural
``EmbeddedSpec`` + ``_vipseg``): 4 train videos, the first 2 without any novel class and the last
2 with one novel thing (box / basket / fan) and possibly novel stuff (ice / grandstand); 2 val
videos, both with a novel thing; 8 frames each. Every frame shows a seen top band (sky or grass)
that no thing can cover (things are at most 0.44·W wide), and a novel thing's centre starts inside
[0.15W, 0.85W]×[0.3H, 0.85H] and moves ≤ 3 px (x) and ≤ 1 px (y) per frame, so it stays in view
(and on top: it is drawn last) in all 8 frames. Pixel-level oracles decode the raw PNGs here with
the dataset's own arithmetic, independently of the reader.
"""

from __future__ import annotations

import shutil

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from PIL import Image

from ovlab.data import CorruptFileError, DatasetNotFoundError
from ovlab.data.files import read_image
from ovlab.data.video_clips import clip_windows, frame_sort_key, sample_clip, stack_clip, videos_from_flat_folder
from ovlab.data.vipseg import NOVEL_IDS, decode_panomask, panomask_segments, read_vipseg
from ovlab.data.vipseg_splits import SPLIT_NAMES, VipsegClips, build_split, load_split, train_base_delete, train_base_ignore, val, val_base, val_novel

GKC_NOVEL = [78, 94, 112, 76, 102, 32, 122, 116, 80, 57, 34, 11]  # GKC register_vipseg.py order
NOVEL = set(GKC_NOVEL)
TRAIN = ["001_synthetic_train", "002_synthetic_train", "003_synthetic_train", "004_synthetic_train"]
VAL = ["005_synthetic_val", "006_synthetic_val"]


def _raw_classes(png) -> np.ndarray:
    """Raw panomask → category id (−1 void), by the README's arithmetic."""
    v = np.array(Image.open(png)).astype(np.int64)
    return np.where(v == 0, -1, np.where(v < 125, v - 1, v // 100 - 1))


def _masks(root, video):
    return sorted((root / "vipseg" / "VIPSeg_720P" / "panomasks" / video).glob("*.png"))


@pytest.fixture(scope="module")
def vroot(embedded_root):
    return embedded_root / "vipseg"


@pytest.fixture(scope="module")
def splits(vroot):
    train = read_vipseg(vroot, "train")
    valv = read_vipseg(vroot, "val")
    return {n: build_split(n, train if n.startswith("train") else valv) for n in SPLIT_NAMES}


def test_novel_ids_are_gkcs_twelve():
    from ovlab.data.categories import load_categories

    assert NOVEL_IDS == tuple(sorted(GKC_NOVEL)) == (11, 32, 34, 57, 76, 78, 80, 94, 102, 112, 116, 122)
    by_id = load_categories("vipseg_124").by_id()
    assert [by_id[i].name for i in NOVEL_IDS] == ["pillar", "ice", "grandstand", "tyre", "box", "basket", "trash_can",
                                                  "bathtub", "fan", "blackboard", "printer", "instrument"]


def test_decode_panomask_by_hand():
    raw = np.array([[0, 1, 124], [125, 6100, 6101], [12401, 29, 300]], dtype=np.uint16)
    cat, inst = decode_panomask(raw)
    # 0 void; 1 -> wall (0); 124 -> id 123 stuff-coded; 125 -> 125//100-1 = 0, inst 25; person = id 60
    np.testing.assert_array_equal(cat, [[-1, 0, 123], [0, 60, 60], [123, 28, 2]])
    np.testing.assert_array_equal(inst, [[-1, -1, -1], [25, 0, 1], [1, -1, 0]])
    with pytest.raises(ValueError, match="12500"):
        decode_panomask(np.array([[12500]]))


def test_panomask_segments_by_hand():
    from ovlab.data.categories import load_categories

    raw = np.array([[29, 29, 6101], [29, 0, 6101], [6102, 6102, 6102]], dtype=np.uint16)
    segs = panomask_segments(raw, load_categories("vipseg_124"))
    assert [(s.id, s.category_id, s.instance, s.isthing, s.area) for s in segs] == [
        (29, 28, -1, False, 3), (6101, 60, 1, True, 2), (6102, 60, 2, True, 3)]


def test_read_vipseg_order_and_sources_agree(vroot):
    vids = read_vipseg(vroot, "val")
    rgb = read_vipseg(vroot, "val", source="panomasksRGB")
    assert [v.name for v in vids] == VAL and [v.name for v in rgb] == VAL
    for a, b in zip(vids, rgb):
        assert [f.name for f in a.frames] == [f"{5 * k:08d}" for k in range(8)]  # the generator's names
        assert [f.number for f in a.frames] == [0, 5, 10, 15, 20, 25, 30, 35]
        for fa, fb in zip(a.frames, b.frames):
            assert [(s.category_id, s.area) for s in fa.segments] == [(s.category_id, s.area) for s in fb.segments]
            np.testing.assert_array_equal(fa.category_map(), fb.category_map())
            np.testing.assert_array_equal(fa.category_map(), _raw_classes(fa.label_path))
            assert (fa.height, fa.width) == (fb.height, fb.width) == (128, 160)
    assert vids[0].frames[0].image().shape == (128, 160, 3)


def test_split_counts(splits):
    expect = {  # (videos, frames, vocabulary size), from the generator's specification (module docstring)
        "train_base_ignore": (TRAIN, 32, 112),
        "train_base_delete": (TRAIN[:2], 16, 112),
        "val_base": (VAL, 16, 112),
        "val_novel": (VAL, 16, 12),
        "val": (VAL, 16, 124),
    }
    for name, (videos, frames, k) in expect.items():
        s = splits[name]
        assert [v.name for v in s.videos] == videos, name
        assert s.num_frames == frames and s.num_classes == k, name
        assert all(len(v) == 8 for v in s.videos)
    assert splits["val_novel"].class_ids == NOVEL_IDS
    assert not set(splits["val_base"].class_ids) & NOVEL and len(set(splits["val_base"].class_ids)) == 112


def test_delete_drops_exactly_the_videos_with_novel_pixels(embedded_root, splits):
    has_novel = {v: any(np.isin(_raw_classes(p), GKC_NOVEL).any() for p in _masks(embedded_root, v)) for v in TRAIN}
    assert has_novel == {TRAIN[0]: False, TRAIN[1]: False, TRAIN[2]: True, TRAIN[3]: True}
    assert [v.name for v in splits["train_base_delete"].videos] == [v for v in TRAIN if not has_novel[v]]


def _base_index(cid: int) -> int:  # position among the 112 base ids: id minus novel ids below it
    return cid - sum(n < cid for n in GKC_NOVEL)


def _novel_index(cid: int) -> int:
    return sorted(GKC_NOVEL).index(cid)


@pytest.mark.parametrize("name", ["train_base_ignore", "val_base", "val_novel", "val"])
def test_semantic_maps_ignore_dropped_pixels(embedded_root, splits, name):
    s = splits[name]
    present, ignored_novel = set(), 0
    for v in s.videos:
        for f in v.frames:
            raw = _raw_classes(f.label_path)
            sem = s.semantic(f)
            assert sem.dtype == np.uint8 and sem.shape == raw.shape
            if name == "val_novel":
                keep = np.isin(raw, GKC_NOVEL)
                expect = np.vectorize(lambda c: _novel_index(c) if c in NOVEL else 255)(raw)
            elif name == "val":
                keep = raw >= 0
                expect = np.where(keep, raw, 255)
            else:
                keep = (raw >= 0) & ~np.isin(raw, GKC_NOVEL)
                expect = np.vectorize(lambda c: _base_index(c) if c >= 0 and c not in NOVEL else 255)(raw)
                ignored_novel += int(np.isin(raw, GKC_NOVEL).sum())
            np.testing.assert_array_equal(sem, expect)
            assert int((sem == 255).sum()) == int((~keep).sum())
            present |= set(np.unique(raw[keep]).tolist())
    assert s.classes_present() == sorted(present)
    if name == "train_base_ignore":
        assert ignored_novel > 0  # novel pixels of videos 003/004 are ignored, not dropped
        assert present <= {28, 15, 18, 0, 13, 35, 60, 48, 62, 49, 51, 90}  # VIDEO_SEEN_* of the generator
    if name == "val_novel":
        assert set(present) <= {32, 34, 76, 78, 102} and present & {76, 78, 102}


def test_hand_indices():
    # sky 28 -> 27 (one novel id, 11, below it); person 60 -> 56; box 76 -> novel 4; fan 102 -> novel 8
    assert (_base_index(28), _base_index(60), _novel_index(76), _novel_index(102)) == (27, 56, 4, 8)


def test_named_builders_match_build_split(vroot, splits):
    for fn in (train_base_ignore, train_base_delete, val_base, val_novel, val):
        s = fn(vroot)
        assert s.name == fn.__name__ and s.summary() == splits[fn.__name__].summary()
    rgb = load_split(vroot, "train_base_ignore", source="panomasksRGB")
    assert rgb.summary() == splits["train_base_ignore"].summary()


def test_ignore_rule_drops_frames_and_keeps_videos_with_base(splits):
    """A hand-made video: frame 1 holds only a novel segment, frame 2 only void."""
    from ovlab.data.vipseg import PanoSegment, VipsegFrame, VipsegVideo

    def fr(n, segs):
        return VipsegFrame(f"{n:08d}", n, None, None, "panomasks", tuple(PanoSegment(*s) for s in segs))

    sky, box = (29, 28, -1, False, 10), (7701, 76, 1, True, 5)
    only_novel = VipsegVideo("n", (fr(0, [box]),))
    mixed = VipsegVideo("m", (fr(0, [sky, box]), fr(1, [box]), fr(2, []), fr(3, [sky])))
    ign = build_split("train_base_ignore", [mixed, only_novel])
    assert [v.name for v in ign.videos] == ["m"] and [f.number for f in ign.videos[0].frames] == [0, 3]
    assert build_split("train_base_delete", [mixed, only_novel]).videos == ()
    nov = build_split("val_novel", [mixed, only_novel])
    assert [(v.name, [f.number for f in v.frames]) for v in nov.videos] == [("m", [0, 1]), ("n", [0])]
    assert [f.number for f in build_split("val", [mixed]).videos[0].frames] == [0, 1, 2, 3]
    assert build_split("val_novel", [mixed], novel_ids=[28]).class_ids == (28,)
    with pytest.raises(ValueError, match="unknown VIPSeg split"):
        build_split("train_novel", [mixed])


def test_clips_on_embedded(splits):
    s = splits["train_base_ignore"]
    clips = VipsegClips.windows(s, 3, tail="pad")
    assert len(clips) == 4 * 3  # 8 frames -> [0,1,2] [3,4,5] [6,7,7+pad]
    c = clips[2]
    assert c.positions == (6, 7, 7) and c.valid.tolist() == [True, True, False]
    assert c.frame_names == ("00000030", "00000035", "00000035")
    assert c.images.shape == (3, 128, 160, 3) and c.images.dtype == np.uint8
    assert c.semantic.shape == (3, 128, 160)
    n = len(c.segment_ids)
    assert c.masks.shape == (n, 3, 128, 160) and c.classes.shape == (n,) and c.isthing.shape == (n,)
    for t in range(3):  # the space-time masks paint the semantic map back, and do not overlap
        paint = np.full((128, 160), 255)
        for m, k in zip(c.masks[:, t], c.classes):
            assert not (paint[m] != 255).any()
            paint[m] = k
        np.testing.assert_array_equal(paint, c.semantic[t])
    # instance identity: a thing's raw value decodes to its class in every frame it appears in
    for sid, k, th in zip(c.segment_ids, c.classes, c.isthing):
        assert th == (sid >= 125) and k == _base_index(int(sid) // 100 - 1 if sid >= 125 else int(sid) - 1)
    whole = VipsegClips.windows(s, None)
    assert len(whole) == 4 and all(len(whole[i].positions) == 8 for i in range(4))
    a = VipsegClips.sampled(s, 2, 20, np.random.default_rng(3))
    b = VipsegClips.sampled(s, 2, 20, np.random.default_rng(3))
    assert len(a) == 4 and a.plan == b.plan and all(len(w) == 2 for _, w in a.plan)


def test_missing_data_raises_with_layout(tmp_path, vroot):
    with pytest.raises(DatasetNotFoundError, match="VIPSeg_720P") as e:
        read_vipseg(tmp_path, "val")
    assert "panomasks/<video>/<frame>.png" in str(e.value)
    copy = tmp_path / "copy"
    shutil.copytree(vroot, copy)
    (copy / "VIPSeg_720P" / "val.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match="val.txt"):
        read_vipseg(copy, "val")
    (copy / "VIPSeg_720P" / "panoptic_gt_VIPSeg_train.json").unlink()
    with pytest.raises(DatasetNotFoundError, match="panoptic_gt_VIPSeg_train.json"):
        read_vipseg(copy, "train", source="panomasksRGB")
    bad = copy / "VIPSeg_720P" / "panomasks" / TRAIN[0] / "00000005.png"
    Image.fromarray(np.full((4, 4), 12500, dtype=np.uint16)).save(bad)
    with pytest.raises(CorruptFileError, match="00000005.png"):
        read_vipseg(copy, "train")
    (copy / "VIPSeg_720P" / "panoVIPSeg_categories.json").write_text('[{"id": 0, "name": "wal"}]')
    with pytest.raises(CorruptFileError, match="panoVIPSeg_categories"):
        read_vipseg(copy, "train", videos=[TRAIN[1]])


# ---- temporal logic on the real CamVid frames (shared/data/samples/camvid_video) ----

def test_frame_sort_key_is_natural():
    names = ["img_10", "img_9", "img_100", "a_2", "00000010", "00000005", "0016E5_07961", "0016E5_07959"]
    assert sorted(names, key=frame_sort_key) == ["00000005", "00000010", "0016E5_07959", "0016E5_07961",
                                                "a_2", "img_9", "img_10", "img_100"]


@pytest.fixture(scope="module")
def camvid(shared_data):
    root = shared_data / "samples" / "camvid_video"
    return videos_from_flat_folder(root / "images", root / "annotations")


def test_camvid_consecutive_order(camvid):
    assert [v.name for v in camvid] == ["0016E5"]
    frames = camvid[0].frames
    assert [f.number for f in frames] == [7959, 7961, 7963, 7965, 7967, 7969]  # labelled every 2nd raw frame
    assert all(f.label_path.name == f.image_path.name for f in frames)
    # real motion: within the sorted order, image and label distances grow with the temporal gap
    imgs = [read_image(f.image_path, "RGB").astype(np.int16) for f in frames]
    labs = [read_image(f.label_path) for f in frames]
    for seq, dist in ((imgs, lambda a, b: np.abs(a - b).mean()), (labs, lambda a, b: (a != b).mean())):
        d = np.array([[dist(a, b) for b in seq] for a in seq])
        for i in range(6):
            right, left = d[i, i:], d[i, : i + 1][::-1]
            assert np.all(np.diff(right) > 0) and np.all(np.diff(left) > 0)


def test_camvid_clip_assembly_and_end_of_video(camvid):
    v = camvid[0]
    n = len(v)
    w = {t: [(c.positions, c.valid) for c in clip_windows(n, 4, tail=t)] for t in ("drop", "pad", "shift", "short")}
    T, F = True, False
    assert w["drop"] == [((0, 1, 2, 3), (T, T, T, T))]
    assert w["pad"] == [((0, 1, 2, 3), (T, T, T, T)), ((4, 5, 5, 5), (T, T, F, F))]
    assert w["shift"] == [((0, 1, 2, 3), (T, T, T, T)), ((2, 3, 4, 5), (F, F, T, T))]
    assert w["short"] == [((0, 1, 2, 3), (T, T, T, T)), ((4, 5), (T, T))]
    strided = clip_windows(n, 2, stride=2, tail="pad")  # frames 0, 2, 4 -> [0, 2] [4, 4]
    assert [(c.positions, c.valid) for c in strided] == [((0, 2), (T, T)), ((4, 4), (T, F))]
    assert [v.frames[p].number for p in strided[0].positions] == [7959, 7963]
    assert [c.positions for c in clip_windows(n, 3, step=1, tail="drop")] == [(0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5)]
    # assembly: stacked real frames equal the files, padding repeats the last frame
    c = w["pad"][1][0]
    win = clip_windows(n, 4, tail="pad")[1]
    imgs = stack_clip(win, lambda p: read_image(v.frames[p].image_path, "RGB"))
    labs = stack_clip(win, lambda p: read_image(v.frames[p].label_path))
    assert imgs.shape == (4, 360, 480, 3) and labs.shape == (4, 360, 480) and labs.dtype == np.uint8
    np.testing.assert_array_equal(imgs[1], read_image(v.frames[c[1]].image_path, "RGB"))
    np.testing.assert_array_equal(imgs[3], imgs[1])
    np.testing.assert_array_equal(labs[0], read_image(v.frames[4].label_path))
    assert set(np.unique(labs[0])) == set(range(12))  # all 11 classes + void (11) in every frame


def test_camvid_missing_annotation(tmp_path, shared_data):
    img = tmp_path / "images"
    img.mkdir()
    shutil.copy(shared_data / "samples" / "camvid_video" / "images" / "0016E5_07959.png", img)
    (tmp_path / "annotations").mkdir()
    with pytest.raises(DatasetNotFoundError, match="0016E5_07959.png"):
        videos_from_flat_folder(img, tmp_path / "annotations")
    with pytest.raises(DatasetNotFoundError):
        videos_from_flat_folder(tmp_path / "nope")


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 40), T=st.integers(1, 9), stride=st.integers(1, 4), step=st.integers(1, 10),
       tail=st.sampled_from(["pad", "shift", "short", "drop"]))
def test_clip_windows_cover_each_frame_once(n, T, stride, step, tail):
    clips = clip_windows(n, T, stride, step, tail)
    sub = list(range(0, n, stride))
    counted = [p for c in clips for p, ok in zip(c.positions, c.valid) if ok]
    assert len(counted) == len(set(counted))
    for c in clips:
        assert list(c.positions) == sorted(c.positions) and set(c.positions) <= set(sub)
        assert len(c) == T or (tail == "short" and c is clips[-1])
    if tail != "drop" and step <= T:
        assert sorted(counted) == sub
    if tail == "drop":  # full clips of distinct frames; overlap (step < T) only un-counts repeats
        assert all(len(set(c.positions)) == T and (all(c.valid) or step < T) for c in clips)


def test_sample_clip_follows_vmf():
    rng = np.random.default_rng(0)
    for _ in range(200):
        w = sample_clip(30, 3, 5, rng)
        assert len(w) == 3 and list(w.positions) == sorted(w.positions) and max(w.positions) - min(w.positions) <= 10
    assert sample_clip(1, 3, 20, rng).positions == (0, 0, 0)
    r0 = sample_clip(5, 2, 0, rng).positions  # range 0: the reference frame repeated
    assert r0[0] == r0[1]
    a = [sample_clip(10, 2, 20, np.random.default_rng(7)).positions for _ in range(3)]
    assert a[0] == a[1] == a[2]
    with pytest.raises(ValueError):
        sample_clip(0, 2, 3, rng)


def test_video_config_defaults_fit_the_embedded_data(vroot):
    from ovlab.config.video import VideoStageParams

    p = VideoStageParams()
    assert p.data.root == "data/embedded/vipseg" and p.eval.protocol == "split-vocab"
    split = load_split(vroot, p.data.train_split, source=p.data.source, categories=p.data.categories,
                       novel_ids=p.data.novel_ids, ignore_label=p.data.ignore_label)
    assert split.name == "train_base_ignore" and split.num_frames == 32
    c = p.clips
    evals = VipsegClips.windows(load_split(vroot, "val"), c.eval_clip_length, c.eval_stride, c.eval_step, c.eval_tail)
    assert [len(w) for _, w in evals.plan] == [8, 8]  # whole-video clips
    train = VipsegClips.sampled(split, c.train_clip_length, c.train_sampling_range, np.random.default_rng(0))
    assert len(train) == 4 and all(len(w) == 2 for _, w in train.plan)
