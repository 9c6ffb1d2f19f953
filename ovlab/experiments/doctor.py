"""``ovlab doctor [--profile paper]``: is this machine ready to run a profile? Offline; downloads nothing.

For every stage section of the profile's parameters (every section of :class:`ovlab.config.Params`) (read through :mod:`ovlab.config`, the
profile applied in memory exactly as ``ovlab profile`` would write it), it checks:

- **datasets**: each root and file the stage reads (COCO panoptic training roots; every benchmark
  it evaluates on, through :mod:`ovlab.data.benchmarks`; VIPSeg), with the number of images found
  against the full split's size (:data:`ovlab.data.prepare.PREPARED`, each with its source), plus
  an inventory of every prepared dataset under ``$DETECTRON2_DATASETS``;
- **weights**: each CLIP checkpoint (model, tag: where :func:`ovlab.clip.loading.find_local_weights`
  finds it, the file it comes from, and its SHA-256 where the origin states one: OpenAI's URLs
  carry it, which ``--verify-hashes`` checks) and each ImageNet backbone file (torchvision's name
  carries the first 8 hex digits of its SHA-256; its size in MB is torchvision's ``_file_size``);
  checkpoints another stage makes (``train.init``) are listed as such;
- **disk**: free space where results and checkpoints go, and how many trainings will write there;
- **GPUs**: CUDA devices and ``torchrun`` against every section's ``train.gpus``.

Exit status 0 when nothing is missing, 1 otherwise, with the list of what to fetch.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

BENCH_SPLIT = {"coco_133": ("coco_133", "val"), "ade20k_150": ("ade20k_150", "validation"),
               "ade20k_847": ("ade20k_847", "validation"), "pascal_context_59": ("pascal_context_59", "val"),
               "pascal_context_459": ("pascal_context_459", "val"), "pascal_voc_20": ("pascal_voc_20", "val"),
               "pascal_voc_20b": ("pascal_voc_20b", "val"), "cityscapes_19": ("cityscapes_19", "val")}
"""benchmark → (the :data:`~ovlab.data.prepare.PREPARED` entry and split whose full size it should have)."""


@dataclass
class Check:
    """One requirement and what was found.

    Attributes:
        stage: the section that needs it (``tgkd``, ``scan.grids.table7b.clip_r101``...).
        kind: ``dataset``, ``weights``, ``disk`` or ``gpu``.
        what: the requirement, in words.
        status: ``ok``, ``partial`` (present, fewer images than the full split), ``missing``,
            ``made`` (an output of another stage), ``info``.
        found: what is there (path, counts, size).
        fetch: what to do when it is missing (where the file comes from).
    """

    stage: str
    kind: str
    what: str
    status: str
    found: str = ""
    fetch: str = ""

    @property
    def problem(self) -> bool:
        return self.status in ("missing", "partial", "mismatch")


@dataclass
class Report:
    """All checks of a profile; :attr:`ok` when none is a problem.

    ``full_sizes``: hold the images found against the full splits (off for the embedded profile,
    whose data are the small synthetic set)."""

    profile: str
    checks: list[Check] = field(default_factory=list)
    full_sizes: bool = True

    @property
    def ok(self) -> bool:
        return not any(c.problem for c in self.checks)

    def add(self, c: Check) -> None:
        key = (c.kind, c.what)
        for old in self.checks:
            if (old.kind, old.what) == key:
                if c.stage not in old.stage.split(", "):
                    old.stage += f", {c.stage}"
                return
        self.checks.append(c)


def profile_params(profile: str | None, params_file: str | Path = "params.yaml"):
    """The parameters of ``params_file`` with ``profile`` applied in memory (``None``: as they are).

    Raises:
        ParamsError: the file or the profile does not validate.
    """
    from ovlab.config import load_params, parse_params, read_yaml
    from ovlab.dvcfiles import copy_pipeline
    from ovlab.profiles import apply_profile

    params_file = Path(params_file).resolve()
    if profile is None:
        return load_params(params_file)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / "params.yaml"
        shutil.copyfile(params_file, tmp)
        copy_pipeline(params_file.parent, d)  # the keys the pipeline files read stay (ovlab.profiles.dvc_keys)
        apply_profile(profile, tmp, profiles_dir=params_file.parent / "profiles")
        return parse_params(read_yaml(tmp), source=f"{params_file} (profile {profile})", root=params_file.parent)


def _datasets_root(params) -> Path:
    env = os.environ.get("DETECTRON2_DATASETS")
    return Path(env).expanduser() if env else params.root / "datasets"


def _count(d: Path, pattern: str) -> int:
    if not d.is_dir():
        return 0
    return sum(1 for _ in (d.glob(pattern)))


def _images_status(rep: "Report", n: int, full: int) -> str:
    return "missing" if n == 0 else ("ok" if n >= full or not rep.full_sizes else "partial")


# ---- datasets ------------------------------------------------------------------------------------

def check_coco_root(rep: Report, stage: str, root: Path, split: str, data, captions: bool) -> None:
    """A COCO panoptic training root (``ovlab.data.coco_panoptic`` layout)."""
    from ovlab.data.prepare import PREPARED

    full = PREPARED["coco_133"][split].images
    img = root / (getattr(data, "image_dir", None) or f"{split}2017")
    pan = root / (getattr(data, "panoptic_dir", None) or f"panoptic_{split}2017")
    pj = root / (getattr(data, "panoptic_json", None) or f"annotations/panoptic_{split}2017.json")
    n_img = _count(img, "*.jpg") + _count(img, "*.png")
    rep.add(Check(stage, "dataset", f"COCO {split}2017 images in {img}", _images_status(rep, n_img, full),
                  f"{n_img} of {full} images", "COCO 2017 images from https://cocodataset.org/#download"))
    n_pan = _count(pan, "*.png")
    rep.add(Check(stage, "dataset", f"COCO panoptic PNGs in {pan}", _images_status(rep, n_pan, full), f"{n_pan} of {full} PNGs",
                  "panoptic_annotations_trainval2017.zip (cocodataset.org), unzip panoptic_{split}2017.zip inside it"))
    rep.add(Check(stage, "dataset", f"COCO panoptic JSON {pj}", "ok" if pj.is_file() else "missing", str(pj) if pj.is_file() else "",
                  "panoptic_annotations_trainval2017.zip (cocodataset.org)"))
    if captions:
        cj = root / (getattr(data, "captions_json", None) or f"annotations/captions_{split}2017.json")
        rep.add(Check(stage, "dataset", f"COCO captions {cj} (grounding loss)", "ok" if cj.is_file() else "missing",
                      str(cj) if cj.is_file() else "", "annotations_trainval2017.zip (cocodataset.org)"))


def check_benchmark(rep: Report, stage: str, name: str, root: Path) -> None:
    """One evaluation benchmark through its reader: how many GT files it finds, against the full split."""
    from ovlab.data.benchmarks import get_benchmark
    from ovlab.data.errors import DatasetNotFoundError
    from ovlab.data.prepare import PREPARED

    bench = get_benchmark(name)
    entry, split = BENCH_SPLIT.get(bench.name, (None, None))
    full = PREPARED[entry][split].images if entry else None
    dst = root
    for f in bench.folders:  # a root that is the dataset folder itself: prepare writes under its parent(s)
        if f and root.as_posix().endswith("/" + f):
            dst = Path(root.as_posix()[: -len(f) - 1])
            break
    how = f"ovlab data prepare {entry} --src <raw> --dst {dst}" if entry else "see docs/real_data.md"
    try:
        recs = bench.records(root)
    except DatasetNotFoundError:
        rep.add(Check(stage, "dataset", f"benchmark {bench.name} under {root}", "missing", "",
                      f"{bench.description}; then `{how}`"))
        return
    n = len(recs)
    status = "ok" if full is None or n >= full or not rep.full_sizes else "partial"
    rep.add(Check(stage, "dataset", f"benchmark {bench.name} under {root}", status,
                  f"{n}{f' of {full}' if full else ''} images ({recs[0].layout.name}, {recs[0].gt.parent})",
                  f"{bench.description}; then `{how}`"))


def check_vipseg(rep: Report, stage: str, root: Path) -> None:
    """VIPSeg videos of the train and val splits."""
    from ovlab.data.errors import DatasetNotFoundError
    from ovlab.data.prepare import PREPARED
    from ovlab.data.vipseg import video_names

    for split in ("train", "val"):
        full = PREPARED["vipseg"][split].images
        try:
            n = len(video_names(root, split))
        except DatasetNotFoundError:
            n = 0
        rep.add(Check(stage, "dataset", f"VIPSeg {split} videos under {root}", _images_status(rep, n, full), f"{n} of {full} videos",
                      "VIPSeg from https://github.com/VIPSeg-Dataset/VIPSeg-Dataset (then its change2_720p.py)"))


def inventory(rep: Report, root: Path) -> None:
    """Every prepared dataset found under ``root`` (informational: what ``ovlab data prepare`` left)."""
    from ovlab.data.prepare import PREPARED

    for name, splits in PREPARED.items():
        for split, s in splits.items():
            n = _count(root / s.folder, s.pattern)
            if n:
                rep.add(Check("datasets root", "dataset", f"prepared {name} {split}: {root / s.folder}",
                              "info", f"{n} of {s.images} ({s.source})"))


# ---- weights -------------------------------------------------------------------------------------

def openai_sha256(url: str) -> str | None:
    """The SHA-256 an OpenAI CLIP URL carries (``.../models/<sha256>/<name>.pt``; openai/CLIP ``clip.py``
    checks downloads against it), or ``None``."""
    m = re.search(r"/([0-9a-f]{64})/[^/]+$", url or "")
    return m.group(1) if m else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def check_clip(rep: Report, stage: str, clip, params, verify: bool) -> None:
    """One CLIP (model, pretrained) of a section."""
    if clip is None or clip.pretrained is None:
        return
    from open_clip.pretrained import get_pretrained_cfg

    from ovlab.clip.loading import candidate_paths, find_local_weights

    name, tag = clip.model.replace("/", "-"), clip.pretrained
    what = f"CLIP {name} pretrained {tag!r}"
    cfg = get_pretrained_cfg(name, tag) or {}
    if not cfg:
        p = params.path(tag)
        rep.add(Check(stage, "weights", f"CLIP {name} checkpoint {p}", "ok" if p.is_file() else "missing",
                      f"{p} ({p.stat().st_size / 1e6:.1f} MB)" if p.is_file() else "", "the checkpoint file named by clip.pretrained"))
        return
    wd = params.path(clip.weights_dir) if clip.weights_dir else None
    cd = params.path(clip.cache_dir) if clip.cache_dir else None
    url, hub = cfg.get("url", ""), cfg.get("hf_hub", "").rstrip("/")
    sha = openai_sha256(url)
    origin = url or f"https://huggingface.co/{hub} (open_clip_model.safetensors / open_clip_pytorch_model.bin)"
    expect = f"SHA-256 {sha}" if sha else "no published hash (the Hugging Face cache checks its own ETag)"
    fetch = f"{origin} -> {candidate_paths(name, tag, weights_dir=wd, cache_dir=cd)[0]}; expected {expect}"
    hit = find_local_weights(name, tag, weights_dir=wd, cache_dir=cd)
    if hit is None:
        rep.add(Check(stage, "weights", what, "missing", "", fetch))
        return
    found = f"{hit} ({hit.stat().st_size / 1e6:.1f} MB)"
    status = "ok"
    if verify and sha:
        got = sha256_file(hit)
        status, found = ("ok", found + ", SHA-256 verified") if got == sha else ("mismatch", found + f", SHA-256 {got} != {sha}")
    rep.add(Check(stage, "weights", what, status, found, fetch))


def torchvision_facts(filename: str) -> tuple[str, float | None]:
    """(URL, size in MB) of a torchvision weights file by its name, from torchvision's weight enums
    (``meta['_file_size']``); ``("", None)`` when torchvision does not list it."""
    try:
        import torchvision.models as tvm
    except ImportError:  # pragma: no cover
        return "", None
    for attr in dir(tvm):
        enum = getattr(tvm, attr)
        if attr.endswith("_Weights") and hasattr(enum, "__members__"):
            for w in enum:
                if w.url.rsplit("/", 1)[-1] == filename:
                    return w.url, w.meta.get("_file_size")
    return "", None


def check_backbone(rep: Report, stage: str, weights: str | None, params, verify: bool) -> None:
    """An ImageNet backbone state-dict file (``model.backbone.weights``)."""
    if not weights:
        return
    p = params.path(weights)
    url, mb = torchvision_facts(p.name)
    m = re.match(r".+-([0-9a-f]{8,})\.pth$", p.name)
    expect = ", ".join(x for x in (f"{mb:.1f} MB" if mb else "", f"SHA-256 starting {m.group(1)}" if m else "") if x)
    fetch = f"{url or 'the backbone checkpoint'} -> {p}" + (f"; expected {expect}" if expect else "")
    if not p.is_file():
        rep.add(Check(stage, "weights", f"backbone {p.name}", "missing", "", fetch))
        return
    size = p.stat().st_size / 1e6
    status, found = "ok", f"{p} ({size:.1f} MB)"
    if mb and abs(size - mb) > 0.05 * mb:
        status, found = "mismatch", found + f", expected {mb:.1f} MB"
    elif verify and m:
        got = sha256_file(p)
        status, found = ("ok", found + ", hash prefix verified") if got.startswith(m.group(1)) else ("mismatch", found + f", SHA-256 {got[:12]}…")
    rep.add(Check(stage, "weights", f"backbone {p.name}", status, found, fetch))


# ---- the sections ----------------------------------------------------------------------------------

def _cells(cfg):
    """(label, trains, section) for the section itself, every shared model and every grid cell;
    ``trains``: the run trains its own model (a cell that names a model only scores it)."""
    out = [("", True, cfg)]
    grids = getattr(cfg, "grids", None)
    if grids is None:
        return out
    for m in grids.models:
        out.append((f".grids.models.{m}", True, cfg.grid_section("models", m)))
    for t, c in grids.cells():
        out.append((f".grids.{t}.{c}", cfg.grid_model(t, c)[0] == "own", cfg.grid_section(t, c)))
    return out


def check_converted(rep: Report, stage: str, path: Path) -> None:
    """A grid cell scored on a converted official checkpoint (``model: converted:<path>``, SCAN
    Tables 6-8 on the released weights): the converted file, or the released ``SCAN.pth`` (and its
    Contextual-Shift CLIP) it is made from by ``ovlab convert scan`` (README "Running SCAN's released
    weights")."""
    if path.is_file():
        rep.add(Check(stage, "weights", f"converted checkpoint {path}", "ok", str(path)))
        return
    src = path.parent / "SCAN.pth"
    clip = path.parent / "clip.pt"
    have = ", ".join(str(p) for p in (src, clip) if p.is_file()) or "neither"
    fetch = (f"SCAN's released SCAN.pth and its CS fine-tuned CLIP (yongliu20/SCAN README) under {path.parent}/, then "
             f"`ovlab convert scan --checkpoint {src} --clip {clip} --out {path}` (found: {have})")
    rep.add(Check(stage, "weights", f"converted checkpoint {path}", "missing", "", fetch))


def diagnose(params, *, profile: str, verify: bool = False) -> Report:
    """Every check of :mod:`ovlab.experiments.doctor` for ``params`` (see the module docstring)."""
    rep = Report(profile, full_sizes=params.base.profile != "embedded")
    droot = _datasets_root(params)
    inventory(rep, droot)
    trainings = 0
    gpus: dict[str, int] = {}
    sections = [n for n in type(params).model_fields if n not in ("base", "synonyms")]
    for sec in sections:
        cfg = params.section(sec)
        if sec not in ("synonym_score", "sgiou") and not hasattr(cfg, "train"):
            continue
        if sec == "synonym_score":
            check_coco_root(rep, sec, params.path(cfg.data.root), cfg.data.split, cfg.data, captions=False)
            check_clip(rep, sec, cfg.clip, params, verify)
            continue
        if sec == "sgiou":
            check_benchmark(rep, sec, "coco_133", params.path(cfg.data_root))
            if cfg.ade_root:
                check_benchmark(rep, sec, "ade20k_150", params.path(cfg.ade_root))
            continue
        grids = getattr(cfg, "grids", None)
        for label, trains, c in _cells(cfg):
            stage = sec + label
            if label.startswith(".grids.") and not label.startswith(".grids.models."):
                table, cell = label[len(".grids."):].split(".", 1)
                kind, ref = cfg.grid_model(table, cell)
                if kind == "converted":
                    check_converted(rep, stage, params.path(ref))
            video = hasattr(c.data, "source")  # the VIPSeg reader's section (ovlab.config.video)
            if video:
                if trains:
                    check_vipseg(rep, stage, params.path(c.data.root))
                if c.train.init:
                    p = params.path(c.train.init)
                    rep.add(Check(stage, "weights", f"initial checkpoint {p}", "ok" if p.is_file() else "made",
                                  str(p) if p.is_file() else "made by the stage tgkd_baseline (dvc repro tgkd_baseline)"))
            elif trains:
                gkc = getattr(c, "gkc", None)
                check_coco_root(rep, stage, params.path(c.data.root), c.data.split, c.data,
                                captions=bool(gkc is not None and gkc.grounding.enabled))
            if not label and not video:
                eroot = params.path(c.eval.root) if c.eval.root else droot
                check_benchmark(rep, stage, c.eval.dataset, eroot)
                for ds in (grids.eval_datasets if grids is not None else []):
                    check_benchmark(rep, f"{sec}.grids", ds, eroot)
            check_clip(rep, stage, getattr(c, "clip", None), params, verify)
            backbone = getattr(getattr(c, "model", None), "backbone", None)
            check_backbone(rep, stage, getattr(backbone, "weights", None), params, verify)
            if trains:
                trainings += 1
                gpus[stage] = c.train.gpus
    check_disk(rep, params, trainings)
    if params.base.device != "cpu":  # base.device: cpu runs everything on the CPU (the embedded profile)
        check_gpus(rep, gpus)
    return rep


def _gb(x: float) -> str:
    return f"{x:.1f} GB" if x >= 0.1 else f"{x * 1e3:.1f} MB"


def check_disk(rep: Report, params, trainings: int) -> None:
    """Free space where results and checkpoints are written, and how many trainings will write there."""
    where = params.root
    free = shutil.disk_usage(where).free / 1e9
    tag = f"profile: {params.base.profile}"

    def same_profile(m: Path) -> bool:  # the resolved params.yaml a run writes beside its model.pt
        p = m.parent / "params.yaml"
        return p.is_file() and tag in p.read_text(encoding="utf-8", errors="replace")

    found = (where / "results").rglob("model.pt") if (where / "results").is_dir() else []
    models = sorted((m for m in found if same_profile(m)), key=lambda p: p.stat().st_size)
    if models:  # an estimate from the largest model this profile has trained so far
        per = models[-1].stat().st_size / 1e9
        need = (f"about {_gb(trainings * per * 4)} ({trainings} x (model.pt {_gb(per)} + last.pt with AdamW state ~3x), "
                f"from {models[-1]})")
    else:
        need = (f"{trainings} x (model.pt + checkpoints/<section>-<fingerprint>/last.pt, which holds the weights and "
                f"the AdamW state, ~3x model.pt); no model.pt of this profile yet to size it from")
    status = "missing" if models and trainings * per * 4 > free else "info"
    rep.add(Check("outputs", "disk", f"free space at {where}", status, f"{free:.1f} GB free; the trainings need {need}",
                  "free disk space or move results/ and checkpoints/ (train.checkpoint_dir) to a larger disk"))


def check_gpus(rep: Report, gpus: dict[str, int]) -> None:
    """CUDA devices and torchrun against ``train.gpus``."""
    try:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # pragma: no cover - a broken CUDA install is reported as 0 devices
        n = 0
    need = max(gpus.values(), default=0)
    if need == 0:
        return
    stages = ", ".join(s for s, g in gpus.items() if g == need and "." not in s) or next(iter(gpus))
    rep.add(Check(stages, "gpu", f"{need} CUDA GPU(s) per node (train.gpus)", "ok" if n >= need else "missing",
                  f"{n} CUDA device(s) visible", "run on a machine with the GPUs, or lower train.gpus in params.yaml"))
    if need > 1:
        tr = shutil.which("torchrun")
        rep.add(Check(stages, "gpu", "torchrun on PATH (train.gpus > 1 relaunches under it)", "ok" if tr else "missing",
                      tr or "", "torchrun comes with torch: activate the environment ovlab is installed in"))


SYMBOL = {"ok": "ok", "partial": "PARTIAL", "missing": "MISSING", "mismatch": "MISMATCH", "made": "made", "info": "--"}


def _stages(text: str) -> str:
    """``tgkd, tgkd.grids.table4.none, …`` → ``tgkd + 19 grid cells``."""
    names = text.split(", ")
    plain = [n for n in names if ".grids." not in n]
    cells: dict[str, int] = {}
    for n in names:
        if ".grids." in n:
            sec = n.split(".grids.")[0]
            cells[sec] = cells.get(sec, 0) + 1
    parts = plain + [f"{k}: {v} grid run(s)" for k, v in cells.items()]
    return ", ".join(parts)


def render(rep: Report) -> str:
    """The report as text: one line per check by kind, then what to fetch."""
    lines = [f"ovlab doctor: profile {rep.profile}"]
    for kind in ("dataset", "weights", "disk", "gpu"):
        rows = [c for c in rep.checks if c.kind == kind]
        if rows:
            lines.append(f"\n{kind}:")
            lines += [f"  [{SYMBOL[c.status]:>8}] {c.what}" + (f"  ({c.found})" if c.found else "") + f"   <- {_stages(c.stage)}" for c in rows]
    todo = [c for c in rep.checks if c.problem]
    if todo:
        lines.append(f"\nto fetch or fix ({len(todo)}):")
        lines += [f"  - {c.what}: {c.fetch or c.found}" for c in todo]
    else:
        lines.append("\nready: nothing missing.")
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="check the datasets, weights, disk and GPUs a profile needs (offline)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default=None, help="apply this profile in memory first (paper, embedded); default: params.yaml as it is")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--verify-hashes", action="store_true", help="hash the weight files whose origin states a SHA-256 (slow)")
    p.add_argument("--json", default=None, help="also write the checks as JSON here")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from ovlab.atomic import write_json
    from ovlab.config import ParamsError

    try:
        params = profile_params(args.profile, args.params)
    except (ParamsError, FileNotFoundError) as exc:
        print(f"ovlab doctor: error: {exc}", file=sys.stderr)
        return 2
    rep = diagnose(params, profile=args.profile or params.base.profile, verify=args.verify_hashes)
    print(render(rep))
    if args.json:
        write_json(args.json, {"profile": rep.profile, "ok": rep.ok, "checks": [c.__dict__ for c in rep.checks]})
    return 0 if rep.ok else 1
