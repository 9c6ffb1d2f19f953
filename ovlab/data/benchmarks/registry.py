"""The standard OVS benchmarks in the layouts ov-seg, SAN, CAT-Seg and Mask2Former prepare under
``$DETECTRON2_DATASETS`` (GKC §4.1, SCAN §4.1), plus the raw layouts the real samples in ``shared/data`` use."""

from __future__ import annotations

from ovlab.data.benchmarks.spec import Benchmark, Layout

JPG = (".jpg", ".jpeg", ".png")
PNG = (".png", ".jpg")

BENCHMARKS: dict[str, Benchmark] = {}


def register(b: Benchmark) -> Benchmark:
    """Add a benchmark; its name and aliases must be new."""
    for n in (b.name, *b.aliases):
        if n in _ALIASES:
            raise ValueError(f"benchmark name {n!r} already registered (by {_ALIASES[n]!r})")
        _ALIASES[n] = b.name
    BENCHMARKS[b.name] = b
    return b


_ALIASES: dict[str, str] = {}


def get_benchmark(name: str) -> Benchmark:
    """A benchmark by canonical name or alias.

    Raises:
        KeyError: unknown name (lists the canonical names).
    """
    if name not in _ALIASES:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(BENCHMARKS))} (aliases: {', '.join(sorted(set(_ALIASES) - set(BENCHMARKS)))})")
    return BENCHMARKS[_ALIASES[name]]


def benchmark_names() -> list[str]:
    """Canonical names of the registered benchmarks (aliases excluded), sorted."""
    return sorted(BENCHMARKS)


register(Benchmark(
    "ade20k_150", ("ade20k_sem_seg_val", "ade20k_150_test_sem_seg", "ade150", "a-150"), "ade20k_150",
    ("ADEChallengeData2016",),
    (
        Layout("detectron2 prepared (0..149, 255)", "annotations_detectron2/validation", ".png", "images/validation", JPG, "identity"),
        Layout("raw SceneParsing (1..150, 0 = other)", "annotations/validation", ".png", "images/validation", JPG, "minus_one"),
        Layout("flat SceneParsing sample (1..150, 0 = other)", "annotations", ".png", "images", JPG, "minus_one"),
    ),
    "ADE20K 150 classes, 2000 validation images",
))
register(Benchmark(
    "ade20k_847", ("ade20k_full_sem_seg_val", "ade20k_full_sem_seg_freq_val_all", "ade847", "a-847"), "ade20k_847",
    ("ADE20K_2021_17_01",),
    (
        Layout("Mask2Former prepared uint16 tif (0..846, 65535)", "annotations_detectron2/validation", ".tif", "images_detectron2/validation", JPG, "identity"),
        Layout("raw ADE20K_2021_17_01 *_seg.png (R/10*256+G)", "images/ADE/validation", "_seg.png", "images/ADE/validation", JPG, "ade_full_rgb", recursive=True),
        Layout("flat *_seg.png sample", "", "_seg.png", "", JPG, "ade_full_rgb"),
    ),
    "ADE20K full, 847 classes, 2000 validation images",
))
register(Benchmark(
    "pascal_context_59", ("pcontext_sem_seg_val", "pascal_context_59_sem_seg_val", "context_59_test_sem_seg", "pc59", "pc-59"), "pascal_context_59",
    ("pascal_ctx_d2", "VOCdevkit/VOC2010"),
    (
        Layout("SAN prepared (0..58, 255)", "annotations_ctx59/validation", ".png", "images/validation", JPG, "identity"),
        Layout("ov-seg/CAT-Seg prepared (0..58, 255)", "annotations_detectron2/pc59_val", ".png", "JPEGImages", JPG, "identity"),
        Layout("mmseg SegmentationClassContext (1..59, 0 = background)", "SegmentationClassContext", ".png", "JPEGImages", JPG, "minus_one"),
    ),
    "PASCAL Context 59 classes, 5105 validation images",
))
register(Benchmark(
    "pascal_context_459", ("pcontext_full_sem_seg_val", "pascal_context_459_sem_seg_val", "context_459_test_sem_seg", "pc459", "pc-459"), "pascal_context_459",
    ("pascal_ctx_d2", "VOCdevkit/VOC2010"),
    (
        Layout("SAN prepared uint16 tif (0..458, 65535)", "annotations_ctx459/validation", ".tif", "images/validation", JPG, "identity"),
        Layout("ov-seg/CAT-Seg prepared uint16 tif", "annotations_detectron2/pc459_val", ".tif", "JPEGImages", JPG, "identity"),
        Layout("GKC prepared uint16 png", "annotations_detectron2/pc459_val", ".png", "JPEGImages", JPG, "identity"),
    ),
    "PASCAL Context full, 459 classes, 5105 validation images",
))
register(Benchmark(
    "pascal_voc_20", ("voc_sem_seg_val", "pascalvoc20_sem_seg_val", "voc_2012_test_sem_seg", "voc20", "pas-20"), "pascal_voc_20",
    ("VOCdevkit/VOC2012", "VOC2012"),
    (
        Layout("prepared (0..19, background and void 255)", "annotations_detectron2/val", ".png", "JPEGImages", JPG, "identity"),
        Layout("raw SegmentationClass palette", "SegmentationClass", ".png", "JPEGImages", JPG, "voc20"),
        Layout("flat SegmentationClass sample", "SegmentationClass", ".png", "images", PNG, "voc20"),
    ),
    "PASCAL VOC 2012, 20 classes, background ignored, 1449 validation images",
))
register(Benchmark(
    "pascal_voc_20b", ("voc_2012_test_background_sem_seg", "voc20b", "pas-20b"), "pascal_voc_20b",
    ("VOCdevkit/VOC2012", "VOC2012"),
    (
        Layout("CAT-Seg prepared with background (0..20, 255)", "annotations_detectron2_bg/val", ".png", "JPEGImages", JPG, "identity"),
        Layout("raw SegmentationClass palette", "SegmentationClass", ".png", "JPEGImages", JPG, "voc20_background"),
        Layout("flat SegmentationClass sample", "SegmentationClass", ".png", "images", PNG, "voc20_background"),
    ),
    "PASCAL VOC 2012, 20 classes + background (PAS-20b)",
))
register(Benchmark(
    "cityscapes_19", ("cityscapes_fine_sem_seg_val", "cityscapes"), "cityscapes_19",
    ("cityscapes",),
    (
        Layout("labelTrainIds (0..18, 255)", "gtFine/val", "_gtFine_labelTrainIds.png", "leftImg8bit/val", ("_leftImg8bit.png",), "identity", recursive=True),
        Layout("labelIds (dataset ids)", "gtFine/val", "_gtFine_labelIds.png", "leftImg8bit/val", ("_leftImg8bit.png",), "dataset_ids", recursive=True),
    ),
    "Cityscapes 19 classes, 500 validation images",
))
register(Benchmark(
    "coco_133", ("coco_2017_val_panoptic_with_sem_seg", "openvocab_coco_2017_val_panoptic_with_sem_seg", "coco_panoptic_133"), "coco_panoptic_133",
    ("coco", "embedded/coco"),
    (
        Layout("panoptic_semseg (0..132, 255)", "panoptic_semseg_val2017", ".png", "val2017", JPG, "identity"),
    ),
    "COCO panoptic 133 classes as semantic labels, 5000 val2017 images",
))
