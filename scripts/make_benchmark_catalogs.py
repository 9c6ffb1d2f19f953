"""Re-write the benchmark class lists of ../shared/data/categories as ovlab catalogs (run once).

    .venv/bin/python scripts/make_benchmark_catalogs.py [SHARED_CATEGORIES_DIR]

Only the facts (index, dataset id, name, flags, colours, cross-dataset ids) are kept, in the
format of ``ovlab/data/catalog/coco_panoptic_133.json``; synonym lists are split into clean
``synonyms`` lists. The output files are committed; this script records how they were made.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "categories"
OUT = ROOT / "ovlab" / "data" / "catalog"


def _color(c):
    return list(c) if c else None


def ade150(c):
    name = c["name"].strip()
    return {"name": name, "synonyms": [s.strip() for s in name.split(",")], "isthing": bool(c["isthing"]),
            "color": _color(c["color"]), "ade_full_ids": c["ade_full_ids"], "pixel_ratio": c["pixel_ratio"]}


def ade847(c):
    return {"name": ", ".join(c["names"]), "synonyms": list(c["names"]), "ade150_index": c["ade150_index"]}


SPECS = {
    "ade20k_150": ("ade20k_150.json", ade150,
                   "ADE20K SceneParsing (ADEChallengeData2016), 150 classes in detectron2 order. 'name' is the "
                   "detectron2 name (comma list of synonyms); 'ade_full_ids' are the ADE20K full-index ids merged "
                   "into the class; 'pixel_ratio' is the pixel share from objectInfo150.",
                   "ADEChallengeData2016 annotations PNG: value = id (1..150), 0 = other; prepared "
                   "annotations_detectron2: index = value - 1, 255 = ignore", 255),
    "ade20k_847": ("ade20k_847.json", ade847,
                   "ADE20K full, 847 classes (ADE20K_2021_17_01) in Mask2Former trainId order. 'name' is the "
                   "Mask2Former comma list; 'id' is the ADE full class id; 'ade150_index' the ADE-150 class it "
                   "merges into (null if none).",
                   "raw *_seg.png: class id = (R // 10) * 256 + G; prepared annotations_detectron2 *.tif: uint16 "
                   "index, 65535 = ignore", 65535),
    "pascal_context_59": ("pascal_context_59.json", lambda c: {"name": c["name"], "pc459_id": c["pc459_id"],
                          **({"alt_names": c["alt_names"]} if c.get("alt_names") else {})},
                          "PASCAL Context (VOC2010) 59 classes in SAN order; 'pc459_id' is the class id in the 459 list; "
                          "'alt_names' the names other repos use.",
                          "raw SegmentationClassContext PNG: 0 = background, id 1..59; prepared: index 0..58, 255 = ignore", 255),
    "pascal_context_459": ("pascal_context_459.json", lambda c: {"name": c["name"]},
                           "PASCAL Context full, 459 classes; index = id - 1.",
                           "prepared uint16 .tif/.png: value = index, 65535 = unlabelled", 65535),
    "pascal_voc_20": ("pascal_voc_20.json", lambda c: {"name": c["name"], "color": _color(c["color"]),
                      **({"alt_names": c["alt_names"]} if c.get("alt_names") else {})},
                      "PASCAL VOC 2012, 20 object classes (devkit spelling, SAN order); the background class of "
                      "PAS-20b is given separately under 'background'.",
                      "SegmentationClass palette PNG: 0 = background, id 1..20, 255 = void; VOC-20: index = id - 1, "
                      "background and void -> 255", 255),
    "cityscapes_19": ("cityscapes_19.json", lambda c: {"name": c["name"], "isthing": bool(c["isthing"]), "color": _color(c["color"])},
                      "Cityscapes 19 evaluation classes; index = trainId, id = labelId.",
                      "*_gtFine_labelTrainIds.png: index 0..18, 255 = ignore; *_gtFine_labelIds.png: id", 255),
    "coco_stuff_171": ("coco_stuff_171.json", lambda c: {"name": c["name"], "isthing": bool(c["isthing"]),
                       **({"color": c["color"]} if c.get("color") else {}), "supercategory": c["supercategory"]},
                       "COCO-Stuff 164k, 171 classes (80 things + 91 stuff) in Mask2Former/SAN order; id in the 1..182 space.",
                       "stuffthingmaps_detectron2 PNG: index 0..170, 255 = ignore", 255),
}


def main():
    for out_name, (src, conv, desc, fmt, ignore) in SPECS.items():
        doc = json.loads((SRC / src).read_text())
        cats = []
        for c in doc["categories"]:
            entry = {"index": c["index"], "id": c["id"]}
            entry.update({k: v for k, v in conv(c).items() if v is not None or k == "ade150_index"})
            cats.append(entry)
        out = {"dataset": out_name, "description": desc, "label_format": fmt, "ignore_label": ignore}
        if "background" in doc:
            out["background"] = doc["background"]
        out["categories"] = cats
        (OUT / f"{out_name}.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
        print(out_name, len(cats))


if __name__ == "__main__":
    main()
