"""The segmentation explorer: any trained checkpoint of the kit, an image, a free vocabulary; the
overlay, per-class areas, per-pixel top-3 classes, and sliders for the test-time knobs.

- Models: every ``model.pt`` / ``last.pt`` the engine writes (GKC's segmenter, SCAN's, and any
  family :func:`ovlab.experiments.registry.from_checkpoint` knows), run through its own
  ``segment`` (Mask2Former semantic inference; SCAN's SIM + CS-CLIP + ensemble, SCAN Fig. 2).
- Vocabulary: ``"a, b|b2, c"``: classes separated by commas, a class's synonyms by ``|``
  (max-pooled over names, GKC §3.1).
- Knobs (:class:`Knobs`): prompt templates (every model); for SCAN the mask threshold, ensemble λ,
  the CS ratio α and CS on/off (SCAN Eq. 5, Tab. 6–8; ``ScanSegmenter.set_inference``).
- Cache: results per (checkpoint, image, vocabulary, knobs); the backbone's and the pixel/query
  decoder's outputs per (checkpoint, image), so a knob or vocabulary change does not re-run the
  backbone (:attr:`Explorer.backbone_calls` counts the real runs). Text banks per (checkpoint,
  vocabulary, templates).

:class:`Explorer` is the engine (no widgets); :class:`ExplorerWidget` the ipywidgets form (heavy
work behind the Run button, with a progress indicator; sliders re-run from the cache), and
:meth:`ExplorerWidget.static` the papermill fallback (PNG + area table).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn


def parse_vocabulary(text: str) -> list[list[str]]:
    """``"a, b|b2, c"`` → ``[["a"], ["b", "b2"], ["c"]]``.

    Raises:
        ValueError: empty vocabulary, an empty class or synonym (``"a,,b"``, ``"a||b"``), or a
            name given twice.
    """
    classes, seen = [], set()
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ValueError("empty vocabulary: give class names separated by commas, synonyms by |")
    for p in parts:
        names = [" ".join(n.split()) for n in p.split("|")]
        if not p or any(not n for n in names):
            raise ValueError(f"empty class or synonym in {text!r} (classes: 'a, b|b2, c')")
        for n in names:
            if n.lower() in seen:
                raise ValueError(f"name {n!r} given twice in {text!r}")
            seen.add(n.lower())
        classes.append(names)
    return classes


@dataclass(frozen=True)
class Knobs:
    """Test-time settings of one explorer run.

    Attributes:
        templates: prompt templates of the text bank (``none`` | ``photo`` | ``vild``).
        short_side: the image is resized so its short side is this (pixels) before the model.
        mask_threshold, clip_weight, cs_ratio, contextual_shift: SCAN only (``ScanInference``:
            the binarisation threshold of the crops, the ensemble λ, α of SCAN Eq. 5, and CS off =
            α 0); ``None`` = the checkpoint's own setting.
    """

    templates: str = "none"
    short_side: int = 320
    mask_threshold: float | None = None
    clip_weight: float | None = None
    cs_ratio: float | None = None
    contextual_shift: bool = True


@dataclass
class ExplorerResult:
    """One explorer run.

    Attributes:
        classes: K class labels (first name of each class).
        labels: (H, W) int64 argmax class of each pixel.
        top3: (3, H, W) int64 best three classes per pixel; top3_scores: (3, H, W) float32 their
            scores normalised over the K classes (sum to 1 per pixel).
        areas: class → percent of the image's pixels.
        image: (H, W, 3) uint8 input.
    """

    classes: list[str]
    labels: np.ndarray
    top3: np.ndarray
    top3_scores: np.ndarray
    areas: dict[str, float]
    image: np.ndarray

    def overlay(self, alpha: float = 0.5) -> np.ndarray:
        """(H, W, 3) uint8 class colours blended over the image (:func:`ovlab.segmenter.predict.overlay`)."""
        from ovlab.segmenter.predict import overlay, palette

        return overlay(self.image, self.labels, palette(len(self.classes)), alpha)

    def at(self, x: int, y: int) -> list[tuple[str, float]]:
        """The top-3 ``(class, score)`` at pixel column ``x``, row ``y``.

        Raises:
            IndexError: outside the image.
        """
        h, w = self.labels.shape
        if not (0 <= x < w and 0 <= y < h):
            raise IndexError(f"pixel ({x}, {y}) outside the {w}×{h} image")
        return [(self.classes[int(self.top3[k, y, x])], float(self.top3_scores[k, y, x])) for k in range(3)]

    def area_frame(self):
        """pandas table: class, colour (hex), area %."""
        import pandas as pd

        from ovlab.segmenter.predict import palette

        colors = palette(len(self.classes))
        return pd.DataFrame([{"class": c, "colour": "#%02x%02x%02x" % tuple(colors[k]), "area %": self.areas[c]}
                             for k, c in enumerate(self.classes)])


class _Memo(nn.Module):
    """A sub-module whose output is remembered per key (the explorer's (checkpoint, image)).

    ``key`` is set by the explorer before each run; with ``key=None`` every call runs. ``calls``
    counts the real forward passes.
    """

    def __init__(self, inner: nn.Module, size: int = 4):
        super().__init__()
        self.inner = inner
        self.key = None
        self.calls = 0
        self._store: OrderedDict = OrderedDict()
        self._size = size

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("inner"), name)

    def forward(self, *args, **kwargs):
        if self.key is not None and self.key in self._store:
            self._store.move_to_end(self.key)
            return self._store[self.key]
        self.calls += 1
        out = self.inner(*args, **kwargs)
        if self.key is not None:
            self._store[self.key] = out
            while len(self._store) > self._size:
                self._store.popitem(last=False)
        return out


def _digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes() + str(image.shape).encode()).hexdigest()[:16]


class Explorer:
    """Runs checkpoints on images with free vocabularies, caching what a knob change does not change.

    Args:
        device: torch device for the models.
        loader: ``loader(path, device) -> Built`` (default
            :func:`ovlab.experiments.registry.from_checkpoint`; tests pass a tiny model).
        cache_size: results kept (least recently used dropped).

    Attributes:
        backbone_calls: real backbone forward passes so far (cache misses), all models together.
    """

    def __init__(self, device: str = "cpu", loader=None, cache_size: int = 64):
        self.device = device
        self._loader = loader
        self._models: dict[str, object] = {}
        self._banks: dict[tuple, object] = {}
        self._results: OrderedDict = OrderedDict()
        self._cache_size = cache_size
        self.runs = 0

    # ------------------------------------------------------------------------------------ models
    def model(self, checkpoint: str | Path):
        """The :class:`ovlab.segmenter.build.Built` of a checkpoint (loaded once, backbone and head memoised).

        Raises:
            FileNotFoundError, ValueError, ParamsError: see ``from_checkpoint``.
        """
        key = str(Path(checkpoint).resolve())
        if key not in self._models:
            loader = self._loader
            if loader is None:
                from ovlab.experiments.registry import from_checkpoint

                loader = lambda p, device: from_checkpoint(p, device=device)  # noqa: E731
            built = loader(checkpoint, self.device)
            net = built.model
            if not isinstance(net.backbone, _Memo):
                net.backbone = _Memo(net.backbone)
                net.head = _Memo(net.head)
            net.to(self.device).eval()
            self._models[key] = built
        return self._models[key]

    @property
    def backbone_calls(self) -> int:
        return sum(b.model.backbone.calls for b in self._models.values())

    def knobs_of(self, checkpoint) -> dict:
        """The checkpoint's own test-time settings (SCAN: its ``ScanInference`` fields; else ``{}``)."""
        settings = getattr(self.model(checkpoint).model, "settings", None)
        if settings is None:
            return {}
        return {"mask_threshold": settings.mask_threshold, "clip_weight": settings.clip_weight,
                "cs_ratio": settings.cs_ratio, "mode": settings.mode}

    # ------------------------------------------------------------------------------------ running
    def run(self, checkpoint, image: np.ndarray, vocabulary: str | list, knobs: Knobs = Knobs()) -> ExplorerResult:
        """Segment ``image`` over ``vocabulary`` with ``knobs`` (cached).

        Args:
            checkpoint: a ``model.pt`` of the kit.
            image: (H, W, 3) uint8 RGB.
            vocabulary: ``"a, b|b2, c"`` or the parsed list (:func:`parse_vocabulary`).

        Raises:
            ValueError: bad vocabulary or knob (e.g. a ratio outside [0, 1]).
        """
        classes = parse_vocabulary(vocabulary) if isinstance(vocabulary, str) else [list(c) for c in vocabulary]
        img = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
        ckey = str(Path(checkpoint).resolve())
        key = (ckey, _digest(img), tuple(tuple(c) for c in classes), knobs)
        if key in self._results:
            self._results.move_to_end(key)
            return self._results[key]
        built = self.model(checkpoint)
        net = built.model
        bank_key = (ckey, key[2], knobs.templates)
        if bank_key not in self._banks:
            from ovlab.segmenter.vocabulary import build_vocabulary

            self._banks[bank_key] = build_vocabulary(built.clip, [", ".join(c) for c in classes],
                                                     templates=knobs.templates)
        vocab = self._banks[bank_key]
        scores = self._scores(net, img, vocab, knobs, (ckey, key[1], knobs.short_side))
        probs = scores / scores.sum(0, keepdim=True).clamp_min(1e-12)
        k = min(3, probs.shape[0])
        top = probs.topk(k, dim=0)
        idx, val = top.indices.numpy(), top.values.numpy().astype(np.float32)
        if k < 3:  # fewer than three classes: pad with the best
            idx = np.concatenate([idx, np.repeat(idx[:1], 3 - k, 0)])
            val = np.concatenate([val, np.zeros((3 - k, *val.shape[1:]), np.float32)])
        labels = idx[0].astype(np.int64)
        counts = np.bincount(labels.ravel(), minlength=len(classes)) / labels.size * 100
        names = [c[0] for c in classes]
        res = ExplorerResult(names, labels, idx.astype(np.int64), val,
                             {n: round(float(a), 2) for n, a in zip(names, counts)}, img)
        self.runs += 1
        self._results[key] = res
        while len(self._results) > self._cache_size:
            self._results.popitem(last=False)
        return res

    def _scores(self, net, image: np.ndarray, vocab, knobs: Knobs, memo_key) -> torch.Tensor:
        """(K, H, W) float32 scores at the image's size."""
        import torch.nn.functional as F

        from ovlab.segmenter.evaluate import prepare_image

        settings = getattr(net, "settings", None)
        if settings is not None:  # SCAN: its test-time numbers
            ratio = settings.cs_ratio if knobs.cs_ratio is None else knobs.cs_ratio
            new = replace(settings,
                          mask_threshold=settings.mask_threshold if knobs.mask_threshold is None else knobs.mask_threshold,
                          clip_weight=settings.clip_weight if knobs.clip_weight is None else knobs.clip_weight,
                          cs_ratio=float(ratio) if knobs.contextual_shift else 0.0)
            old = settings
            net.set_inference(new)
        x, (h, w) = prepare_image(image, "short_side", knobs.short_side, 4 * knobs.short_side)
        net.backbone.key = net.head.key = memo_key
        try:
            with torch.no_grad():
                scores = net.segment(x.to(self.device), vocab.text.to(self.device), vocab.class_index, len(vocab))
        finally:
            net.backbone.key = net.head.key = None
            if settings is not None:
                net.set_inference(old)
        scores = scores[..., :h, :w]
        scores = F.interpolate(scores.float(), size=image.shape[:2], mode="bilinear", align_corners=False)
        return scores[0].cpu()


def find_checkpoints(results: str | Path = "results") -> list[Path]:
    """Every trained ``model.pt`` under ``results`` (the kit's stage and grid outputs), sorted."""
    root = Path(results)
    return sorted(p for p in root.rglob("model.pt")) if root.is_dir() else []


# ----------------------------------------------------------------------------------------- widget
class ExplorerWidget:
    """The explorer form.

    Args:
        explorer: the engine (default: a new :class:`Explorer`).
        checkpoints: the checkpoint choices (default: :func:`find_checkpoints` of ``results``).
        images: image choices: paths, or ``(label, (H, W, 3) uint8)`` pairs (a benchmark's records).
        vocabulary: the initial free vocabulary.
    """

    def __init__(self, explorer: Explorer | None = None, checkpoints=None, images=None,
                 vocabulary: str = "sky, grass|lawn, road, person, car", results: str | Path = "results"):
        self.explorer = explorer or Explorer()
        self.checkpoints = [str(c) for c in (checkpoints if checkpoints is not None else find_checkpoints(results))]
        self.images = list(images or [])
        self.vocabulary = vocabulary
        self.result: ExplorerResult | None = None
        self._widget = None

    def image_array(self, choice) -> np.ndarray:
        """The (H, W, 3) uint8 pixels of an image choice (a path or a ``(label, array)`` pair).

        Raises:
            FileNotFoundError / CorruptFileError: unreadable file.
        """
        if isinstance(choice, tuple):
            return choice[1]
        from ovlab.data.files import read_image

        return read_image(Path(choice), "RGB")

    def _image_options(self):
        return [(c[0] if isinstance(c, tuple) else Path(c).name, i) for i, c in enumerate(self.images)]

    def knobs(self) -> Knobs:
        """The knobs the sliders show (the checkpoint's own settings until a slider moves)."""
        if self._widget is None:
            return Knobs()
        scan = self._is_scan()
        return Knobs(templates=self.templates.value, short_side=int(self.short_side.value),
                     mask_threshold=float(self.threshold.value) if scan else None,
                     clip_weight=float(self.weight.value) if scan else None,
                     cs_ratio=float(self.ratio.value) if scan else None,
                     contextual_shift=bool(self.cs.value))

    def _is_scan(self) -> bool:
        return bool(self.checkpoint.value) and bool(self.explorer.knobs_of(self.checkpoint.value))

    # ------------------------------------------------------------------------------------ static
    def static(self, checkpoint=None, image=None, vocabulary: str | None = None, knobs: Knobs = Knobs()) -> ExplorerResult | None:
        """The papermill fallback: run once and show the overlay PNG and the area table."""
        from ovlab.widgets.display import png_bytes, show_static

        ckpt = checkpoint or (self.checkpoints[0] if self.checkpoints else None)
        choice = image if image is not None else (self.images[0] if self.images else None)
        if ckpt is None or choice is None:
            show_static(None, None, title="Segmentation explorer: no trained checkpoint or image yet (run `dvc repro`)")
            return None
        res = self.explorer.run(ckpt, self.image_array(choice), vocabulary or self.vocabulary, knobs)
        side = np.concatenate([res.image, res.overlay()], axis=1)
        show_static(png_bytes(side), res.area_frame(),
                    title=f"Segmentation explorer (static view): {Path(ckpt).parent.name} · {vocabulary or self.vocabulary}")
        return res

    # ------------------------------------------------------------------------------------ the form
    def widget(self):
        if self._widget is None:
            self._widget = self._build()
        return self._widget

    def _build(self):
        import ipywidgets as w

        self.checkpoint = w.Dropdown(options=self.checkpoints, value=self.checkpoints[0] if self.checkpoints else None,
                                     description="Checkpoint", layout=w.Layout(width="520px"))
        self.image = w.Dropdown(options=self._image_options(), value=0 if self.images else None, description="Image")
        self.path = w.Text(placeholder="or an image file path", description="File")
        self.vocab = w.Text(value=self.vocabulary, description="Vocabulary", layout=w.Layout(width="520px"),
                            continuous_update=False)
        self.templates = w.Dropdown(options=["none", "photo", "vild"], value="none", description="Templates")
        self.short_side = w.IntSlider(value=320, min=64, max=1024, step=32, description="short side",
                                      continuous_update=False)
        self.threshold = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="mask thr",
                                       continuous_update=False)
        self.weight = w.FloatSlider(value=0.7, min=0.0, max=1.0, step=0.05, description="ensemble λ",
                                    continuous_update=False)
        self.ratio = w.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05, description="CS ratio",
                                   continuous_update=False)
        self.cs = w.Checkbox(value=True, description="Contextual Shift")
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="", layout=w.Layout(width="160px"))
        self.status = w.HTML()
        self.overlay = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto", object_fit="contain"))
        self.overlay.add_class("ovlab-overlay")
        self.areas = w.HTML()
        self.x = w.IntSlider(value=0, min=0, max=1, description="pixel x", continuous_update=False)
        self.y = w.IntSlider(value=0, min=0, max=1, description="pixel y", continuous_update=False)
        self.pixel = w.HTML()
        self.run_button.on_click(lambda _b: self.run())
        for s in (self.templates, self.short_side, self.threshold, self.weight, self.ratio, self.cs, self.vocab):
            s.observe(lambda _c: self.run() if self.result is not None else None, names="value")
        self.checkpoint.observe(lambda _c: self._sync_knobs(), names="value")
        for s in (self.x, self.y):
            s.observe(lambda _c: self._show_pixel(), names="value")
        self.scan_box = w.HBox([self.threshold, self.weight, self.ratio, self.cs])
        self._sync_knobs()
        self._enable_click()
        root = w.VBox([self.checkpoint, w.HBox([self.image, self.path]), self.vocab,
                       w.HBox([self.templates, self.short_side]), self.scan_box,
                       w.HBox([self.run_button, self.progress, self.status]),
                       w.HBox([self.overlay, w.VBox([self.areas, self.x, self.y, self.pixel])],
                              layout=w.Layout(align_items="flex-start"))])
        root.add_class("ovlab-explorer")
        return root

    def _sync_knobs(self) -> None:
        if not self.checkpoint.value:
            self.scan_box.layout.display = "none"
            return
        try:
            own = self.explorer.knobs_of(self.checkpoint.value)
        except Exception as exc:  # a broken checkpoint: say so in the form
            self.status.value = f"<span style='color:#b00'>{exc}</span>"
            return
        self.scan_box.layout.display = None if own else "none"
        if own:
            self.threshold.value, self.weight.value = own["mask_threshold"], own["clip_weight"]
            self.ratio.value = own["cs_ratio"]

    def _enable_click(self) -> None:
        """Hover or click on the image picks the pixel shown in the top-3 box (ipyevents; the x/y sliders
        always work). The image is the input and the overlay side by side: both halves map to the same pixel."""
        try:
            from ipyevents import Event
        except ImportError:
            return
        ev = Event(source=self.overlay, watched_events=["click", "mousemove"], wait=150,
                   throttle_or_debounce="throttle")

        def on(event):
            if self.result is None:
                return
            h, w = self.result.labels.shape
            if "dataX" in event:  # ipyevents gives image-pixel coordinates for an Image widget
                col, row = int(event["dataX"]), int(event["dataY"])
            else:
                col = int(event["relativeX"] * 2 * w / (event.get("boundingRectWidth") or 2 * w))
                row = int(event["relativeY"] * h / (event.get("boundingRectHeight") or h))
            self.x.value, self.y.value = min(w - 1, max(0, col % w)), min(h - 1, max(0, row))

        ev.on_dom_event(on)
        self._event = ev

    def run(self) -> ExplorerResult | None:
        """Run the current settings (the Run button; sliders call it once a result is shown)."""
        from ovlab.widgets.display import png_bytes

        self.progress.value, self.progress.bar_style = 0, "info"
        self.status.value = "running…"
        try:
            if not self.checkpoint.value:
                raise ValueError("no checkpoint: train one (`dvc repro`) or pass checkpoints=[...]")
            choice = self.path.value.strip() or (self.images[self.image.value] if self.image.value is not None else None)
            if choice is None:
                raise ValueError("no image: pick one or type a file path")
            before = self.explorer.backbone_calls
            res = self.explorer.run(self.checkpoint.value, self.image_array(choice), self.vocab.value, self.knobs())
        except Exception as exc:  # shown in the form, the kernel keeps going
            self.status.value = f"<span style='color:#b00'>{type(exc).__name__}: {exc}</span>"
            self.progress.bar_style = "danger"
            return None
        self.result = res
        self.overlay.value = png_bytes(np.concatenate([res.image, res.overlay()], axis=1))
        self.areas.value = res.area_frame().to_html(index=False)
        h, w = res.labels.shape
        self.x.max, self.y.max = w - 1, h - 1
        cached = self.explorer.backbone_calls == before
        self.progress.value, self.progress.bar_style = 1, "success"
        self.status.value = f"done ({'backbone cached' if cached else 'backbone run'})"
        self._show_pixel()
        return res

    def _show_pixel(self) -> None:
        if self.result is None:
            return
        top = self.result.at(int(self.x.value), int(self.y.value))
        self.pixel.value = "<b>top-3 at (%d, %d)</b><br>" % (self.x.value, self.y.value) + "<br>".join(
            f"{c}: {s:.2f}" for c, s in top)

    def show(self, live: bool) -> None:
        """Display the live form or the static fallback."""
        from IPython.display import display

        if live:
            display(self.widget())
        else:
            self.static()
