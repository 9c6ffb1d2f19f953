"""The ``synonym_score`` stage (notebook 01b): GKC Eq. 1 over every segment of a COCO-panoptic split.

The formula and the crop settings are :mod:`ovlab.gkc.synonym_score`; this module is the stage
around them (GKC's offline pass ``syn_CLIP_sim.py`` over COCO train): it reads the synonym sets and
the dataset, scores every segment with a frozen CLIP, caches each image's result, writes the score
table, its metrics and a CSV, and gives the notebook its views (:func:`segments_frame`,
:func:`segment_previews`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ovlab.atomic import write_json, write_text
from ovlab.config.record import write_record
from ovlab.clip.crops import masked_crops
from ovlab.clip.loading import ClipModel, load_clip_from_params
from ovlab.clip.text import encode_names
from ovlab.data.categories import load_categories
from ovlab.data.files import read_json
from ovlab.data.names import normalize_class_name
from ovlab.gkc.synonym_score import crop_settings, synonym_score


@dataclass
class SynonymScoreResult:
    """What the stage produced (also written to the files named in the params).

    Attributes:
        scores: ``{image_id: {segment_id: {class, category_id, iscrowd, trivial, scores: {name: p}}}}``
            (ids as strings, JSON-ready).
        metrics: summary statistics, the CLIP identity, caveats.
        clip: the model used.
    """

    scores: dict
    metrics: dict
    clip: ClipModel


def _read_synonyms(path: Path) -> dict[str, list[str]]:
    table = read_json(path)
    if not isinstance(table, dict) or not all(isinstance(v, list) and v for v in table.values()):
        raise ValueError(f"{path}: expected {{canonical name: [names, canonical first]}}")
    return table


def _cache_dir(stage, clip: ClipModel, synonyms: dict) -> Path:
    cfg = stage.cfg
    doc = {"model": clip.name, "weights": clip.weights_key(), "crop": cfg.crop, "fill": cfg.fill,
           "expand": cfg.expand, "prompt": cfg.prompt, "temperature": cfg.temperature,
           "synonyms": synonyms, "data": cfg.data.model_dump()}
    key = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]
    return stage.path(stage.base.paths.cache) / "synonym_score" / key


def run_synonym_score(stage, *, write: bool = True, progress: bool = True) -> SynonymScoreResult:
    """Run the ``synonym_score`` stage (GKC Eq. 1; GKC ``syn_CLIP_sim.py``).

    Reads the synonym sets (``synonyms`` stage output) and the COCO-panoptic split named in the
    section, scores every segment (all segments, crowd included, as GKC's pass over segments_info),
    one image at a time in batches of ``batch_size`` crops, and writes ``output`` (JSON keyed by
    image id then segment id), ``metrics`` and ``table`` atomically. Each image's result is also
    cached under ``<base.paths.cache>/synonym_score/<key>/<image_id>.json`` (the key hashes model,
    weights, crop settings, prompt, temperature, synonyms and data), so an interrupted run resumes.

    Raises:
        ValueError: a segment's class is not in the synonyms file (names class and file); bad params.
        WeightsNotFoundError: CLIP weights missing.
        DatasetNotFoundError, CorruptFileError: dataset problems (name the file).
    """
    from tqdm import tqdm

    from ovlab.data.coco_panoptic import read_coco_panoptic
    from ovlab.caveats import EMBEDDED_CAVEAT

    cfg = stage.cfg
    if "{}" not in cfg.prompt:
        raise ValueError(f"{stage.source}: {stage.name}.prompt: needs a '{{}}' placeholder, got {cfg.prompt!r}")
    syn_path = stage.path(cfg.synonyms)
    synonyms = _read_synonyms(syn_path)
    d = cfg.data
    records = read_coco_panoptic(stage.path(d.root), d.split, image_dir=d.image_dir, panoptic_dir=d.panoptic_dir,
                                 panoptic_json=d.panoptic_json)
    if d.max_images is not None:
        records = records[:d.max_images]
    cats = load_categories("coco_panoptic_133").by_id()

    def class_of(seg) -> str:
        name = normalize_class_name(cats[seg.category_id].name)
        if name not in synonyms:
            raise ValueError(f"{syn_path}: no synonym set for class {name!r} (category id {seg.category_id})")
        return name

    needed = sorted({class_of(s) for r in records for s in r.segments if len(synonyms[class_of(s)]) > 1})
    clip = load_clip_from_params(cfg.clip, stage)
    temperature = cfg.temperature if cfg.temperature is not None else 1.0 / clip.logit_scale
    text = {c: encode_names(clip, synonyms[c], [cfg.prompt]) for c in needed}
    cache = _cache_dir(stage, clip, synonyms)
    crop_kw = crop_settings(cfg, clip)

    scores: dict[str, dict] = {}
    n_forward = 0
    for rec in tqdm(records, desc="synonym score", unit="img", disable=not progress):
        cached = cache / f"{rec.image_id}.json"
        if cached.is_file():
            scores[str(rec.image_id)] = read_json(cached)
            continue
        out: dict[str, dict] = {}
        todo = []
        for k, seg in enumerate(rec.segments):
            c = class_of(seg)
            names = synonyms[c]
            out[str(seg.id)] = {"class": c, "category_id": seg.category_id, "iscrowd": seg.iscrowd,
                                "trivial": len(names) == 1, "scores": {names[0]: 1.0} if len(names) == 1 else {}}
            if len(names) > 1:
                todo.append(k)
        if todo:
            image, masks = rec.image(), rec.masks()
            for i in range(0, len(todo), cfg.batch_size):
                chunk = todo[i:i + cfg.batch_size]
                crops, _ = masked_crops(image, masks[chunk], **crop_kw)
                emb = clip.encode_image(crops)
                n_forward += len(chunk)
                for row, k in enumerate(chunk):
                    seg = rec.segments[k]
                    c = out[str(seg.id)]["class"]
                    p = synonym_score(emb[row:row + 1], text[c], temperature)[0].tolist()
                    out[str(seg.id)]["scores"] = dict(zip(synonyms[c], p))
        if write:
            write_json(cached, out)
        scores[str(rec.image_id)] = out

    metrics = synonym_score_metrics(scores, synonyms)
    metrics.update({
        "temperature": temperature, "crop": cfg.crop, "fill": cfg.fill if cfg.crop == "mask" else None,
        "prompt": cfg.prompt, "clip": clip.identity(), "segments_forwarded_this_run": n_forward,
        "synthetic": stage.base.profile == "embedded",
    })
    if stage.base.profile == "embedded" or clip.untrained:
        metrics["caveat"] = EMBEDDED_CAVEAT + (" " + clip.identity()["warning"] if clip.untrained else "")
    metrics.pop("segments_forwarded_this_run")  # run-dependent: kept out of the (reproducible) metrics file
    if write:
        write_json(stage.path(cfg.output), scores)
        write_record(stage.path(cfg.metrics), metrics)  # + info.json beside it (ovlab.config.record)
        write_text(stage.path(cfg.table), segments_csv(scores, synonyms))
    return SynonymScoreResult(scores=scores, metrics=metrics, clip=clip)


def _rows(scores: dict, synonyms: dict):
    for image_id, segs in scores.items():
        for seg_id, s in segs.items():
            canonical = synonyms[s["class"]][0]
            p = s["scores"]
            top = max(p, key=p.get)
            yield image_id, seg_id, s, canonical, p, top


def synonym_score_metrics(scores: dict, synonyms: dict) -> dict:
    """Summary of a score table: counts, mean canonical-name score, how often the canonical name wins,
    mean normalised entropy (0 = one name takes all, 1 = uniform), over non-trivial segments."""
    n_seg = n_triv = 0
    can, top1, ent = [], [], []
    classes = set()
    for _, _, s, canonical, p, top in _rows(scores, synonyms):
        n_seg += 1
        classes.add(s["class"])
        if s["trivial"]:
            n_triv += 1
            continue
        v = np.array(list(p.values()), dtype=np.float64)
        can.append(p[canonical])
        top1.append(top == canonical)
        ent.append(float(-(v * np.log(np.clip(v, 1e-30, None))).sum() / math.log(len(v))))
    mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
    return {"n_images": len(scores), "n_segments": n_seg, "n_trivial": n_triv, "n_scored": n_seg - n_triv,
            "n_classes": len(classes), "mean_canonical_score": mean(can), "canonical_top1_rate": mean(top1),
            "mean_normalised_entropy": mean(ent)}


def segments_csv(scores: dict, synonyms: dict) -> str:
    """One row per (segment, name): image_id, segment_id, class, name, canonical, score, trivial."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image_id", "segment_id", "class", "name", "canonical", "score", "trivial"])
    for image_id, seg_id, s, canonical, p, _ in _rows(scores, synonyms):
        for name, v in p.items():
            w.writerow([image_id, seg_id, s["class"], name, name == canonical, repr(float(v)), s["trivial"]])
    return buf.getvalue()


def segments_frame(scores: dict, synonyms: dict):
    """pandas table, one row per segment: image_id, segment_id, class, n_names, canonical_score,
    top_name, top_score, canonical_top (the canonical name has the highest score), trivial."""
    import pandas as pd

    rows = [{"image_id": i, "segment_id": sid, "class": s["class"], "n_names": len(synonyms[s["class"]]),
             "canonical_score": p[c], "top_name": top, "top_score": p[top], "canonical_top": top == c, "trivial": s["trivial"]}
            for i, sid, s, c, p, top in _rows(scores, synonyms)]
    return pd.DataFrame(rows, columns=["image_id", "segment_id", "class", "n_names", "canonical_score",
                                       "top_name", "top_score", "canonical_top", "trivial"])


def segment_previews(stage, pairs, *, size: int = 96) -> list[np.ndarray]:
    """The crops the stage scored, for display: (size, size, 3) uint8 per ``(image_id, segment_id)``.

    Uses the stage's crop variant with CLIP's mean/std replaced by no normalisation.
    """
    from ovlab.data.coco_panoptic import read_coco_panoptic

    cfg = stage.cfg
    d = cfg.data
    recs = {str(r.image_id): r for r in read_coco_panoptic(stage.path(d.root), d.split, image_dir=d.image_dir,
                                                             panoptic_dir=d.panoptic_dir,
                                                             panoptic_json=d.panoptic_json)}
    mask = cfg.crop == "mask"
    out = []
    for image_id, seg_id in pairs:
        rec = recs[str(image_id)]
        k = [str(s.id) for s in rec.segments].index(str(seg_id))
        crops, _ = masked_crops(rec.image(), rec.masks()[k:k + 1], size=size, fill=cfg.fill if mask else "none",
                                expand=cfg.expand, resize="stretch" if mask else "shortest", normalize=False)
        out.append((crops[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8))
    return out
