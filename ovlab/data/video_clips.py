"""Videos as ordered frames, and clips of T frames cut from them (GKC §3.4).

Dataset-agnostic: VIPSeg (:mod:`ovlab.data.vipseg`) and flat frame folders such as the CamVid
sample (``<sequence>_<number>.png``, :func:`videos_from_flat_folder`) both become
:class:`FrameVideo` objects, and the same clip logic runs on them.

Clip vocabulary (all positions index the video's frame list, 0-based):

- ``clip_length`` T: frames per clip.
- ``stride`` s: the video is first subsampled to positions 0, s, 2s, … (m = ceil(n / s) frames);
  a clip holds T *consecutive* frames of that subsampled sequence, i.e. positions
  ``p, p + s, …, p + (T − 1)·s``. Positions between are skipped (stride 1 uses every frame).
- ``step``: distance between the first frames of consecutive clips, counted in subsampled
  frames (default T: non-overlapping windows; step < T gives overlapping, sliding windows).
- ``tail``: what to do when the last window runs past the end of the video:
  ``"drop"`` discards it (every clip has exactly T distinct frames; training);
  ``"pad"`` repeats the last frame to length T, the repeats marked not valid;
  ``"shift"`` moves the window back so it ends on the last frame (frames already covered are
  marked not valid; a video shorter than T frames is padded instead);
  ``"short"`` keeps a shorter last clip.

``valid`` marks each clip frame that an evaluation should count: with any tail but ``"drop"``
every subsampled frame is valid in exactly one clip, so per-frame metrics count each frame once.

VMF-style random training clips (Video Mask2Former ``SAMPLING_FRAME_NUM``/``SAMPLING_FRAME_RANGE``;
GKC gives no clip length or stride, so this is our choice) come from :func:`sample_clip`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ovlab.data.errors import CorruptFileError, DatasetNotFoundError

Tail = Literal["drop", "pad", "shift", "short"]
TAILS: tuple[str, ...] = ("drop", "pad", "shift", "short")

_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def frame_sort_key(stem: str) -> tuple[str, int, str]:
    """Natural order of frame names: ``(prefix, trailing number, stem)``.

    ``"img_9"`` sorts before ``"img_10"``; zero-padded VIPSeg names (``"00000005"``) and CamVid
    names (``"0016E5_07959"``) sort by their frame number. A stem without trailing digits gets
    number −1 (it sorts first within its prefix).
    """
    m = _TRAILING_NUMBER.match(stem)
    return (m.group(1), int(m.group(2)), stem) if m else (stem, -1, stem)


@dataclass(frozen=True)
class VideoFrame:
    """One frame of a video.

    Attributes:
        name: file stem (``"00000005"``, ``"0016E5_07959"``).
        number: the frame number parsed from the stem's trailing digits (−1 if none); raw-video
            frame numbers, so gaps show how far apart annotated frames are.
        image_path: the RGB frame.
        label_path: its annotation (``None`` when the video has none, e.g. a test split).
    """

    name: str
    number: int
    image_path: Path
    label_path: Path | None = None


@dataclass(frozen=True)
class FrameVideo:
    """A video: a name and its frames in temporal order."""

    name: str
    frames: tuple[VideoFrame, ...]

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class ClipWindow:
    """Which frames of one video form a clip.

    Attributes:
        positions: (T,) positions in the video's frame list, non-decreasing (repeats = padding).
        valid: (T,) whether each position is counted by an evaluation (False for padding and for
            frames an earlier clip of the same video already holds).
    """

    positions: tuple[int, ...]
    valid: tuple[bool, ...]

    def __len__(self) -> int:
        return len(self.positions)


def clip_windows(num_frames: int, clip_length: int, stride: int = 1, step: int | None = None,
                 tail: Tail = "pad") -> list[ClipWindow]:
    """Deterministic clips covering a video of ``num_frames`` frames (see the module docstring).

    Args:
        num_frames: n ≥ 0, frames in the video.
        clip_length: T ≥ 1.
        stride: s ≥ 1, frame step inside a clip (the video is subsampled to 0, s, 2s, …).
        step: ≥ 1, clip start step in subsampled frames (default T).
        tail: ``"drop"``, ``"pad"``, ``"shift"`` or ``"short"``.

    Returns:
        Clips in temporal order (empty for n = 0, or when ``"drop"`` leaves nothing).

    Raises:
        ValueError: a non-positive T / stride / step, negative n, or an unknown tail.

    Example: n = 6, T = 4 → drop: [0,1,2,3]; pad: [0,1,2,3] + [4,5,5,5] (valid T,T,F,F);
    shift: [0,1,2,3] + [2,3,4,5] (valid F,F,T,T); short: [0,1,2,3] + [4,5].
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be ≥ 0, got {num_frames}")
    if clip_length < 1 or stride < 1:
        raise ValueError(f"clip_length and stride must be ≥ 1, got {clip_length} and {stride}")
    step = clip_length if step is None else step
    if step < 1:
        raise ValueError(f"step must be ≥ 1, got {step}")
    if tail not in TAILS:
        raise ValueError(f"unknown tail {tail!r}; use one of {TAILS}")
    sub = list(range(0, num_frames, stride))  # subsampled positions
    m, T = len(sub), clip_length
    out: list[ClipWindow] = []
    covered: set[int] = set()

    def emit(idx: list[int], pad_to: int) -> None:
        pos = [sub[i] for i in idx]
        valid = []
        for p in pos:
            valid.append(p not in covered)
            covered.add(p)
        pos += [pos[-1]] * (pad_to - len(pos))
        valid += [False] * (pad_to - len(valid))
        out.append(ClipWindow(tuple(pos), tuple(valid)))

    start = 0
    while start < m:
        end = start + T
        if end <= m:
            emit(list(range(start, end)), T)
        elif tail == "drop":
            break
        elif tail == "shift" and m >= T:
            emit(list(range(m - T, m)), T)
        elif tail == "short":
            emit(list(range(start, m)), m - start)
        else:  # pad (and shift of a video shorter than T)
            emit(list(range(start, m)), T)
        if end >= m:
            break
        start += step
    return out


def sample_clip(num_frames: int, clip_length: int, sampling_range: int, rng: np.random.Generator) -> ClipWindow:
    """One random training clip, as Video Mask2Former's dataset mapper draws it (our choice: GKC does not say).

    A reference position r is drawn uniformly from 0..n−1; the other T − 1 positions are drawn
    uniformly *with replacement* (as VMF's ``np.random.choice``) from
    [r − range, r + range] ∩ [0, n) without r; all T are sorted. A one-frame video repeats r.

    Args:
        num_frames: n ≥ 1.
        clip_length: T ≥ 1.
        sampling_range: ≥ 0, in frames (VMF default 20); 0 repeats the reference frame.
        rng: consumed; same generator state → same clip.

    Returns:
        :class:`ClipWindow` with every position valid.

    Raises:
        ValueError: n < 1, T < 1 or a negative range.
    """
    if num_frames < 1 or clip_length < 1 or sampling_range < 0:
        raise ValueError(f"need num_frames ≥ 1, clip_length ≥ 1, sampling_range ≥ 0; got "
                         f"{num_frames}, {clip_length}, {sampling_range}")
    ref = int(rng.integers(num_frames))
    lo, hi = max(0, ref - sampling_range), min(num_frames, ref + sampling_range + 1)
    others = [p for p in range(lo, hi) if p != ref]
    picks = rng.choice(others, size=clip_length - 1).tolist() if others and clip_length > 1 else [ref] * (clip_length - 1)
    pos = tuple(sorted(int(p) for p in picks + [ref]))
    return ClipWindow(pos, (True,) * clip_length)


def stack_clip(window: ClipWindow, load: Callable[[int], np.ndarray], *, what: str = "frame") -> np.ndarray:
    """Load the clip's frames with ``load(position)`` and stack them: (T, ...) array.

    A repeated position is loaded once.

    Raises:
        CorruptFileError: the frames differ in shape (names the two positions).
    """
    cache: dict[int, np.ndarray] = {}
    for p in window.positions:
        if p not in cache:
            cache[p] = load(p)
    first = cache[window.positions[0]]
    for p, a in cache.items():
        if a.shape != first.shape:
            raise CorruptFileError(f"{what} {p}", f"shape {a.shape} differs from {what} {window.positions[0]}'s {first.shape}")
    return np.stack([cache[p] for p in window.positions])


FLAT_LAYOUT = """\
<images_dir>/<sequence>_<number>.png     frames; <number> = raw frame number (CamVid: 0016E5_07959.png)
<labels_dir>/<sequence>_<number>.png     optional, the annotation of the same name
"""


def videos_from_flat_folder(images_dir: str | Path, labels_dir: str | Path | None = None,
                            suffixes: Sequence[str] = (".png", ".jpg")) -> list[FrameVideo]:
    """Group a flat folder of frames (``<sequence>_<number>.<ext>``) into videos.

    The sequence is the stem up to its last ``_``; frames are ordered by the trailing number
    (:func:`frame_sort_key`). This is the CamVid layout (``shared/data/samples/camvid_video``).

    Args:
        images_dir: folder of frames.
        labels_dir: folder of annotations named like the frames (``.png``); when given, every
            frame must have one.
        suffixes: image file suffixes to take.

    Returns:
        Videos sorted by sequence name.

    Raises:
        DatasetNotFoundError: a folder is missing or holds no frame; a frame has no annotation.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise DatasetNotFoundError("video frames", images_dir, FLAT_LAYOUT)
    files = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in suffixes and p.is_file())
    if not files:
        raise DatasetNotFoundError("video frames", images_dir / f"*{suffixes[0]}", FLAT_LAYOUT)
    if labels_dir is not None and not Path(labels_dir).is_dir():
        raise DatasetNotFoundError("video frames", labels_dir, FLAT_LAYOUT)
    groups: dict[str, list[VideoFrame]] = {}
    for f in files:
        seq = f.stem.rsplit("_", 1)[0] if "_" in f.stem else ""
        label = None
        if labels_dir is not None:
            label = Path(labels_dir) / f"{f.stem}.png"
            if not label.is_file():
                raise DatasetNotFoundError("video frames", label, FLAT_LAYOUT, hint=f"(the annotation of {f})")
        groups.setdefault(seq, []).append(VideoFrame(f.stem, frame_sort_key(f.stem)[1], f, label))
    return [FrameVideo(seq, tuple(sorted(fr, key=lambda v: frame_sort_key(v.name)))) for seq, fr in sorted(groups.items())]
