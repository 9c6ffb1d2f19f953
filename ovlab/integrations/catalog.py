"""Benchmark names, dataset dicts and metadata in detectron2's conventions, without detectron2.

What SAN, CAT-Seg, FC-CLIP and SCAN read from ``MetadataCatalog.get(name)``: ``stuff_classes``
(the class names in index order), ``ignore_label``, ``evaluator_type`` (``"sem_seg"``),
``image_root`` / ``sem_seg_root``, ``stuff_dataset_id_to_contiguous_id``; the dataset dicts are
detectron2's ``load_sem_seg`` records (``file_name``, ``sem_seg_file_name``). Every benchmark of
:mod:`ovlab.data.benchmarks` is offered under its canonical name and its aliases (the split names
those repositories register, e.g. ``ade20k_full_sem_seg_val``, ``pcontext_full_sem_seg_val``).
"""

from __future__ import annotations

from pathlib import Path

from ovlab.data.benchmarks import BENCHMARKS, get_benchmark


def registered_names() -> dict[str, str]:
    """``{name or alias: canonical benchmark name}`` for every benchmark."""
    out: dict[str, str] = {}
    for b in BENCHMARKS.values():
        for n in (b.name, *b.aliases):
            out[n] = b.name
    return out


def metadata(name: str, root: str | Path | None = None) -> dict:
    """The ``MetadataCatalog`` fields of a benchmark (by name or alias).

    ``image_root`` / ``sem_seg_root`` (and ``ovlab_gt_decoder``, how :class:`SGIoUEvaluator` decodes
    the GT files) are filled when the dataset is found under ``root`` (default ``$DETECTRON2_DATASETS``).
    ``ovlab_gt_decoder`` other than ``identity`` means the files are a raw layout (not class indices):
    detectron2's own ``SemSegEvaluator`` would misread them; run ``ovlab data prepare`` first.

    Raises:
        KeyError: unknown benchmark.
    """
    from ovlab.data.errors import DatasetNotFoundError

    bench = get_benchmark(name)
    cats = bench.categories()
    meta = {
        "stuff_classes": list(cats.names),
        "ignore_label": int(cats.ignore_label),
        "evaluator_type": "sem_seg",
        "stuff_dataset_id_to_contiguous_id": {int(c.id): int(c.index) for c in cats},
        "ovlab_benchmark": bench.name,
    }
    try:
        base, lay = bench.locate(root)
    except DatasetNotFoundError:
        return meta
    meta.update(image_root=str(base / lay.image_dir) if lay.image_dir else str(base / lay.gt_dir),
                sem_seg_root=str(base / lay.gt_dir), ovlab_gt_decoder=lay.decoder)
    return meta


def dataset_dicts(name: str, root: str | Path | None = None) -> list[dict]:
    """detectron2 ``load_sem_seg``-style records of a benchmark split found under ``root``.

    Raises:
        KeyError: unknown benchmark. DatasetNotFoundError: nothing under ``root`` (draws the layouts).
    """
    bench = get_benchmark(name)
    return [{"file_name": str(r.image) if r.image else None, "sem_seg_file_name": str(r.gt), "image_id": r.stem}
            for r in bench.records(root)]
