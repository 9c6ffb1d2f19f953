"""``ovlab data prepare <dataset> --src RAW --dst ROOT``: the standard prepared layouts from raw downloads.

One module per dataset family (:mod:`.coco`, :mod:`.ade20k`, :mod:`.pascal`, :mod:`.cityscapes`,
:mod:`.vipseg`), each following the preparation script the OVS repositories ship (named in its
docstring) and writing what :mod:`ovlab.data.benchmarks` and the training readers read, under
``ROOT`` (= ``$DETECTRON2_DATASETS``). Every preparation is resumable and idempotent (finished
files are skipped; each file is written atomically), runs in parallel over files with a progress
bar, and stops at the first missing or undecodable source file with an error naming it
(:mod:`.jobs`).

:data:`PREPARED` lists, for each dataset, the prepared folder of each split and the number of
images the full dataset has there, with the document the number comes from: ``ovlab doctor``
compares what it finds with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ovlab.data.prepare.jobs import PrepareError, PrepareReport

__all__ = ["PREPARED", "PrepareError", "PrepareReport", "PreparedSplit", "prepare", "prepare_names"]


@dataclass(frozen=True)
class PreparedSplit:
    """One split of a prepared dataset.

    Attributes:
        folder: the folder of its label files, relative to ``ROOT``.
        pattern: glob of one label file in it (``**/`` when it has sub-folders).
        images: how many images (frames: videos for VIPSeg) the full split has.
        source: where that number is stated.
    """

    folder: str
    pattern: str
    images: int
    source: str


def _fn(module: str, name: str) -> Callable:
    def call(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(f"ovlab.data.prepare.{module}"), name)(*args, **kwargs)

    call.__name__ = name
    return call


_COCO = "COCO 2017 (cocodataset.org, 'Download'): 118287 train / 5000 val images; panoptic annotations cover all of them"
_STUFF = "COCO-Stuff 164k (nightrome/cocostuff README): 118k train / 5k val images (= COCO 2017)"
_ADE150 = "ADEChallengeData2016 (CSAILVision/sceneparsing README): 20210 training / 2000 validation images"
_ADE847 = "ADE20K_2021_17_01 (CSAILVision/ADE20K README): 27574 images, 25574 training / 2000 validation"
_CTX = "PASCAL-Context (cs.stanford.edu/~roozbeh/pascal-context; = VOC2010 ImageSets/Main): 4998 train / 5105 val images"
_VOC = "PASCAL VOC 2012 devkit (ImageSets/Segmentation): 1464 train / 1449 val images"
_CITY = "Cityscapes (cityscapes-dataset.com, gtFine): 2975 train / 500 val / 1525 test images"
_VIPS = "VIPSeg (Miao et al., CVPR 2022, §3): 3536 videos, 2806 train / 343 val / 387 test"

DATASETS: dict[str, tuple[Callable, str]] = {
    "coco_133": (_fn("coco", "prepare_coco_133"), "COCO panoptic → semantic 133 (panoptic_semseg_*), captions kept"),
    "coco_stuff_171": (_fn("coco", "prepare_coco_stuff_171"), "COCO-Stuff 171 from stuffthingmaps (stuffthingmaps_detectron2)"),
    "ade20k_150": (_fn("ade20k", "prepare_ade20k_150"), "ADE20K-150 from ADEChallengeData2016 (label − 1, 0 → 255)"),
    "ade20k_847": (_fn("ade20k", "prepare_ade20k_847"), "ADE20K-847 from ADE20K_2021_17_01 (_seg.png → uint16, 65535 ignore, short side 512)"),
    "pascal_context_59": (_fn("pascal", "prepare_pascal_context_59"), "PASCAL Context 59 from the Context .mat labels (255 ignore)"),
    "pascal_context_459": (_fn("pascal", "prepare_pascal_context_459"), "PASCAL Context 459 from the Context .mat labels (uint16, 65535 ignore)"),
    "pascal_voc_20": (_fn("pascal", "prepare_pascal_voc_20"), "PASCAL VOC 2012, 20 classes (background ignored)"),
    "pascal_voc_20b": (_fn("pascal", "prepare_pascal_voc_20b"), "PASCAL VOC 2012, 20 classes + background"),
    "cityscapes_19": (_fn("cityscapes", "prepare_cityscapes_19"), "Cityscapes labelIds → labelTrainIds (19 classes)"),
    "vipseg": (_fn("vipseg", "prepare_vipseg"), "VIPSeg panomasks → semantic per split (124 classes, 255 void)"),
}

PREPARED: dict[str, dict[str, PreparedSplit]] = {
    "coco_133": {"train": PreparedSplit("coco/panoptic_semseg_train2017", "*.png", 118287, _COCO),
                 "val": PreparedSplit("coco/panoptic_semseg_val2017", "*.png", 5000, _COCO)},
    "coco_stuff_171": {"train": PreparedSplit("coco/stuffthingmaps_detectron2/train2017", "*.png", 118287, _STUFF),
                       "val": PreparedSplit("coco/stuffthingmaps_detectron2/val2017", "*.png", 5000, _STUFF)},
    "ade20k_150": {"training": PreparedSplit("ADEChallengeData2016/annotations_detectron2/training", "*.png", 20210, _ADE150),
                   "validation": PreparedSplit("ADEChallengeData2016/annotations_detectron2/validation", "*.png", 2000, _ADE150)},
    "ade20k_847": {"training": PreparedSplit("ADE20K_2021_17_01/annotations_detectron2/training", "*.tif", 25574, _ADE847),
                   "validation": PreparedSplit("ADE20K_2021_17_01/annotations_detectron2/validation", "*.tif", 2000, _ADE847)},
    "pascal_context_59": {"train": PreparedSplit("VOCdevkit/VOC2010/annotations_detectron2/pc59_train", "*.png", 4998, _CTX),
                          "val": PreparedSplit("VOCdevkit/VOC2010/annotations_detectron2/pc59_val", "*.png", 5105, _CTX)},
    "pascal_context_459": {"train": PreparedSplit("VOCdevkit/VOC2010/annotations_detectron2/pc459_train", "*.tif", 4998, _CTX),
                           "val": PreparedSplit("VOCdevkit/VOC2010/annotations_detectron2/pc459_val", "*.tif", 5105, _CTX)},
    "pascal_voc_20": {"train": PreparedSplit("VOCdevkit/VOC2012/annotations_detectron2/train", "*.png", 1464, _VOC),
                      "val": PreparedSplit("VOCdevkit/VOC2012/annotations_detectron2/val", "*.png", 1449, _VOC)},
    "pascal_voc_20b": {"train": PreparedSplit("VOCdevkit/VOC2012/annotations_detectron2_bg/train", "*.png", 1464, _VOC),
                       "val": PreparedSplit("VOCdevkit/VOC2012/annotations_detectron2_bg/val", "*.png", 1449, _VOC)},
    "cityscapes_19": {"train": PreparedSplit("cityscapes/gtFine/train", "**/*_gtFine_labelTrainIds.png", 2975, _CITY),
                      "val": PreparedSplit("cityscapes/gtFine/val", "**/*_gtFine_labelTrainIds.png", 500, _CITY)},
    "vipseg": {"train": PreparedSplit("VIPSeg/VIPSeg_720P/semantic/train", "*", 2806, _VIPS),
               "val": PreparedSplit("VIPSeg/VIPSeg_720P/semantic/val", "*", 343, _VIPS)},
}
"""The prepared folders and full-split sizes ``ovlab doctor`` checks (VIPSeg: videos, one folder each)."""


def prepare_names() -> list[str]:
    """The datasets ``ovlab data prepare`` knows."""
    return list(DATASETS)


def prepare(dataset: str, src: str | Path, dst: str | Path, **options) -> PrepareReport:
    """Prepare ``dataset`` from the raw download ``src`` into ``dst`` (``$DETECTRON2_DATASETS``).

    Args:
        dataset: a name of :func:`prepare_names`.
        src: the raw dataset folder (its layout is in the error when it does not match).
        dst: the datasets root the prepared folder goes under.
        **options: ``splits`` (list), ``workers``, ``link`` (``symlink|copy|none``: unchanged images),
            ``overwrite``, ``progress``; ``split`` (the split of a flat folder without split lists),
            ``labels`` (Context ``.mat`` folder), ``short_side`` (ADE-847 resize).

    Raises:
        KeyError: unknown dataset. PrepareError: a missing or bad source (named).
    """
    if dataset not in DATASETS:
        raise KeyError(f"no preparation for {dataset!r}; known: {', '.join(DATASETS)}")
    return DATASETS[dataset][0](Path(src), Path(dst), **options)
