"""detectron2 integration: ovlab's benchmarks in ``DatasetCatalog`` / ``MetadataCatalog`` and an
SG-IoU evaluator for any detectron2-based OVS code (SAN, CAT-Seg, FC-CLIP, SCAN, GKC).

Importable only when detectron2 is installed (it is not on PyPI: ``pip install
'git+https://github.com/facebookresearch/detectron2.git'``, see the README); ovlab's core never
imports it. Use::

    from ovlab.integrations.detectron2 import SGIoUEvaluator, register_all
    register_all()                      # once, after the repo's own registrations

    # in the Trainer's build_evaluator(cfg, dataset_name, output_folder):
    return SGIoUEvaluator(dataset_name, association="scan_ade20k_847", output_dir=output_folder)

:func:`register_all` adds every benchmark under its canonical name and the split names the other
repositories register (``ade20k_full_sem_seg_val``, ``pcontext_full_sem_seg_val``,
``voc_2012_test_background_sem_seg``...; :func:`ovlab.integrations.catalog.registered_names`),
skipping names already registered so that a repository's own registration wins. The metadata are
those SAN / CAT-Seg read: ``stuff_classes``, ``ignore_label``, ``evaluator_type="sem_seg"``.

:class:`SGIoUEvaluator` is a ``DatasetEvaluator``: ``process`` takes each output's ``sem_seg``
(C, H, W) scores, argmaxes them and compares with the GT file (decoded by the benchmark's reader:
prepared or raw layout alike); ``evaluate`` gathers the confusion matrices of all workers and
returns ``{"sem_seg": {mIoU, fwIoU, mACC, pACC, IoU-<class>..., SG-mIoU, SG-IoU-<class>...,
mIoU-seen, mIoU-unseen, hIoU}}`` (:mod:`ovlab.integrations.sg_evaluation`).
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.evaluation import DatasetEvaluator
    from detectron2.utils import comm
except ImportError as exc:  # pragma: no cover - exercised where detectron2 is absent
    raise ImportError(
        "ovlab.integrations.detectron2 needs detectron2, which is not on PyPI: install it from source "
        "(pip install 'git+https://github.com/facebookresearch/detectron2.git'; see the README)"
    ) from exc

import numpy as np

from ovlab.data.benchmarks.decoders import DECODERS
from ovlab.data.files import read_image
from ovlab.integrations.catalog import dataset_dicts, metadata, registered_names
from ovlab.integrations.sg_evaluation import SGAccumulator

__all__ = ["SGIoUEvaluator", "register_all"]


def register_all(root: str | os.PathLike | None = None, *, overwrite: bool = False) -> list[str]:
    """Register every benchmark (canonical names and aliases) under ``root`` (``$DETECTRON2_DATASETS``).

    Returns:
        the names registered now (those already in ``DatasetCatalog`` are kept unless ``overwrite``).
    """
    root = root if root is not None else os.environ.get("DETECTRON2_DATASETS", "datasets")
    done = []
    for name, canonical in registered_names().items():
        if name in DatasetCatalog.list():
            if not overwrite:
                continue
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, lambda c=canonical: dataset_dicts(c, root))
        MetadataCatalog.get(name).set(**metadata(canonical, root))
        done.append(name)
    return done


class SGIoUEvaluator(DatasetEvaluator):
    """mIoU + SG-IoU (SCAN Eq. 6) + seen/unseen/harmonic mIoU for a semantic segmentation dataset.

    Args:
        dataset_name: a registered dataset; its metadata give ``stuff_classes``, ``ignore_label``
            and, for ovlab's registrations, the GT decoder.
        association: association map by name (``"scan_ade20k_847"``), JSON path, or ``None``: the
            benchmark's shipped map when ovlab knows the dataset, else no SG-IoU.
        unseen: unseen class names or indices (default: the catalog's ``novel`` classes, if any).
        distributed: gather the matrices of all workers (``detectron2.utils.comm``).
        output_dir: also write ``sg_iou_results.json`` there.
        sg_mode: ``"code"`` or ``"pooled"`` (see :func:`ovlab.metrics.sg_true_positives`).
    """

    def __init__(self, dataset_name: str, association=None, unseen=None, distributed: bool = True,
                 output_dir: str | None = None, sg_mode: str = "code"):
        meta = MetadataCatalog.get(dataset_name)
        self.dataset_name = dataset_name
        self._decoder = DECODERS[getattr(meta, "ovlab_gt_decoder", "identity")]
        bench = getattr(meta, "ovlab_benchmark", None) or registered_names().get(dataset_name)
        self._cats = None
        if bench is not None:
            from ovlab.data.benchmarks import get_benchmark
            from ovlab.metrics.evaluate import default_association

            self._cats = get_benchmark(bench).categories()
            association = association if association is not None else default_association(bench)
            if unseen is None and self._cats.unseen():
                unseen = [c.index for c in self._cats.unseen()]
        names = list(meta.stuff_classes)
        self._acc = SGAccumulator(names, int(getattr(meta, "ignore_label", 255)), association, unseen, sg_mode)
        self._distributed = distributed
        self._output_dir = output_dir

    def reset(self) -> None:
        self._acc.reset()

    def _gt(self, path: str) -> np.ndarray:
        raw = read_image(path)
        return self._decoder(raw, self._cats) if self._cats is not None else raw.astype(np.int64)

    def process(self, inputs, outputs) -> None:
        for inp, out in zip(inputs, outputs):
            pred = out["sem_seg"].argmax(dim=0).to("cpu").numpy()
            self._acc.add(self._gt(inp["sem_seg_file_name"]), pred)

    def evaluate(self):
        conf = self._acc.confusion
        if self._distributed:
            comm.synchronize()
            mats = comm.all_gather(conf)
            if not comm.is_main_process():
                return {}
            conf = np.sum(mats, axis=0)
        res = self._acc.summary(conf)
        if self._output_dir:
            Path(self._output_dir).mkdir(parents=True, exist_ok=True)
            from ovlab.atomic import write_json

            write_json(Path(self._output_dir) / "sg_iou_results.json",
                       {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in res.items()})
        return {"sem_seg": res}
