"""A stage's run record, split in two files so that DVC compares runs: ``metrics.json`` and ``info.json``.

Every stage that writes a metrics file writes a *record* (one nested mapping) through
:func:`write_record`, which splits it by value:

- ``metrics.json`` (the file ``dvc.yaml`` declares under ``metrics:``, committed to git so that
  ``dvc exp show`` / ``dvc metrics diff`` compare HEAD and experiments): numbers, booleans, nulls
  and short categorical strings (a word such as ``coco_133``, ``text_guided``, ``ovlab-tiny-rn``:
  at most 40 characters of letters, digits and ``_.+-``);
- ``info.json`` beside it (``<stem>.info.json`` for any other name): everything else — text
  (the embedded caveat, the untrained-CLIP warning, notes), paths, lists, and the provenance keys
  :data:`INFO_KEYS` (config fingerprint, overrides, timings of this run), wherever they occur.

Both files keep the record's nesting (``{"eval": {"mIoU": ...}}`` in one, ``{"eval": {"dataset_root":
...}}`` in the other), so :func:`read_record` merges them back into the record that was written:
readers see the same keys as before the split. The metrics file holds no timing, so the same
params and seed give a byte-identical ``metrics.json`` on CPU.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

INFO_KEYS = frozenset({"caveat", "warning", "warnings", "note", "fingerprint", "code", "overrides", "path",
                       "checkpoint", "folder", "wordnet_source"})
"""Keys that always go to the info file (provenance, text), at any depth."""

_CATEGORICAL = re.compile(r"^[A-Za-z0-9_.+\-]{1,40}$")


def _is_info_key(key: str) -> bool:
    return key in INFO_KEYS or key.endswith("_this_run") or key.endswith("_seconds")


def _is_metric_value(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float)):
        return True
    return isinstance(value, str) and bool(_CATEGORICAL.match(value))


def split_record(record: dict) -> tuple[dict, dict]:
    """``record`` → ``(metrics, info)``, each with the record's nesting (empty mappings dropped).

    Raises:
        TypeError: ``record`` is not a mapping.
    """
    if not isinstance(record, dict):
        raise TypeError(f"a run record is a mapping, got {type(record).__name__}")
    metrics: dict = {}
    info: dict = {}
    for key, value in record.items():
        if _is_info_key(str(key)):
            info[key] = value
        elif isinstance(value, dict):
            m, i = split_record(value)
            if m or not i:
                metrics[key] = m
            if i:
                info[key] = i
        elif _is_metric_value(value):
            metrics[key] = value
        else:
            info[key] = value
    return metrics, info


def merge_record(metrics: dict, info: dict) -> dict:
    """Inverse of :func:`split_record`: one mapping with the keys of both (mappings merged)."""
    out = dict(metrics)
    for key, value in info.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_record(out[key], value)
        else:
            out[key] = value
    return out


def info_path(metrics_path: str | Path) -> Path:
    """The info file beside a metrics file: ``metrics.json`` → ``info.json``, ``cost.json`` → ``cost.info.json``."""
    p = Path(metrics_path)
    return p.with_name("info.json") if p.name == "metrics.json" else p.with_name(f"{p.stem}.info.json")


def write_record(metrics_path: str | Path, record: dict) -> tuple[Path, Path]:
    """Split ``record`` (:func:`split_record`) and write ``metrics_path`` and its :func:`info_path`,
    each atomically (JSON, 2-space indent, keys in the record's order).

    Returns:
        ``(metrics file, info file)``.

    Raises:
        TypeError: ``record`` is not a mapping or holds a value JSON cannot encode.
    """
    from ovlab.atomic import write_json

    metrics, info = split_record(record)
    mp, ip = Path(metrics_path), info_path(metrics_path)
    write_json(ip, info)
    write_json(mp, metrics)
    return mp, ip


def read_record(path: str | Path) -> dict | None:
    """The record written by :func:`write_record`: ``metrics.json`` merged with its info file.

    Args:
        path: the metrics file, or the folder holding ``metrics.json``.

    Returns:
        the merged mapping; ``None`` when the metrics file does not exist. A missing info file
        (e.g. a fresh clone, where git holds the metrics but the DVC cache holds the info) gives
        the metrics alone.

    Raises:
        ValueError: a file is not valid JSON (the message names it).
    """
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.json"
    if not p.is_file():
        return None
    out = []
    for f in (p, info_path(p)):
        if not f.is_file():
            out.append({})
            continue
        try:
            out.append(json.loads(f.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{f}: not valid JSON ({exc})") from None
    return merge_record(out[0], out[1])
