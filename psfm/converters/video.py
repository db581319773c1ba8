"""Videos (PyAV): one scene per video file, views sampled by stride or time, the sharpest of each window when asked.

A video is unposed like an image folder (``pose_source: none``; intrinsics assumed from ``video.fov_deg``
across the longer side, recorded in ``source``), but its frames exist only once decoded, so this module
decodes and samples them itself (``Capture.sampled``) instead of listing files for ``base`` to stride over.
Only the chosen frames are kept, already shrunk to ``max_side``: memory follows the views written, not the
video's length.

Sampling cuts the decoded frames into windows of ``stride`` frames, or of ``video.every_seconds`` of
presentation time. With ``max_views`` the windows are grouped into that many equal runs, so the views span
the whole video rather than its first seconds. Each window gives one view: its first frame, or, with
``video.min_sharpness`` > 0, its sharpest one (variance of the Laplacian of the greyscale frame). Taking the
sharpest rather than dropping a sampled frame that is blurry keeps the views evenly spread: motion blur comes
in bursts of a few frames, and a neighbour of a blurred frame sees nearly the same view, sharply. A window
whose sharpest frame is still below the threshold gives no view and counts one ``blurry_frame`` skip.

Frames are shown upright the way ffmpeg's own tools show them: the display matrix (which phones write for
portrait videos) is turned into the same quarter turn or mirror that ffmpeg's autorotate inserts. PyAV is
imported lazily, here only (``pip install 'psfm[video]'``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from psfm.converters.base import Capture, list_files
from psfm.converters.frames import CaptureError, Frame, View, limit_size
from psfm.converters.images import assumed_intrinsics
from psfm.converters.options import ConvertOptions
from psfm.errors import UsageError

LOOKS_FOR = "a video file (.mp4 .mov .mkv .avi .webm), or a folder of them"
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")
UNPOSED = True  # pose_model= may predict its poses

# [H, W, C] -> the picture as shown, named after ffmpeg's filters
TURNS = {
    "none": lambda image: image,
    "hflip": lambda image: image[:, ::-1],
    "vflip": lambda image: image[::-1],
    "180": lambda image: image[::-1, ::-1],
    "transpose": lambda image: image.swapaxes(0, 1),  # transpose=cclock_flip
    "clock": lambda image: np.rot90(image, -1),
    "cclock": lambda image: np.rot90(image, 1),
    "clock_flip": lambda image: np.rot90(image, -1)[::-1],  # the anti-transpose
}


def import_av() -> Any:
    """PyAV, or a usage error naming the extra that installs it."""
    try:
        import av
    except ImportError:
        raise UsageError("format=video needs PyAV: pip install 'psfm[video]' (or pip install av)") from None
    return av


def list_videos(folder: Path) -> list[Path]:
    return list_files(folder, VIDEO_SUFFIXES)


def find_scenes(root: Path) -> list[Path]:
    import_av()  # a missing PyAV is named before any scene is read
    if root.is_file():
        return [root] if root.suffix.lower() in VIDEO_SUFFIXES else []
    return list_videos(root)


def sharpness(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (OpenCV's ``Laplacian`` with ``ksize=1``) over interior pixels.

    Measured on the decoded frame (before ``max_side``), greyscale 0-255. Not scale-free: the same scene filmed
    at a higher resolution scores lower, so a threshold belongs to a capture setup; the scores of the views
    taken are recorded in ``source.frame_sharpness`` to tune it.
    """
    grey = grey.astype(np.float32)
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return float(laplacian.var()) if laplacian.size else 0.0


def display_matrix(frame: Any) -> np.ndarray | None:
    """The frame's 3x3 display matrix (int32, 16.16 fixed point, libavutil/display.h), None when it has none."""
    for side_data in frame.side_data:
        if getattr(side_data.type, "name", None) == "DISPLAYMATRIX":
            return np.frombuffer(bytes(side_data), dtype=np.int32).reshape(3, 3)
    return None


def display_turn(matrix: np.ndarray | None, where: str) -> str:
    """The key of ``TURNS`` that shows a frame upright, decided as ffmpeg's autorotate decides it.

    ffmpeg takes the clockwise angle ``-av_display_rotation_get(matrix)`` to whole degrees, then tells a turn
    from a mirrored turn by the signs of the matrix entries; only quarter turns are handled here.
    """
    if matrix is None:
        return "none"
    a, b, c, d = (float(value) for value in (matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1]))
    if math.hypot(a, c) == 0 or math.hypot(b, d) == 0:  # singular: no angle, as in ffmpeg
        return "vflip" if d < 0 else "none"
    clockwise = round(math.degrees(math.atan2(b / math.hypot(b, d), a / math.hypot(a, c)))) % 360
    if clockwise == 0:
        return "vflip" if d < 0 else "none"
    if clockwise == 90:
        return "transpose" if c > 0 else "clock"
    if clockwise == 180:
        return {(True, True): "180", (True, False): "hflip", (False, True): "vflip"}.get((a < 0, d < 0), "none")
    if clockwise == 270:
        return "clock_flip" if c < 0 else "cclock"
    raise CaptureError("unsupported_rotation", f"{where}: display matrix turns by {clockwise} degrees, not a quarter")


@dataclass(frozen=True)
class Sampling:
    """Which window a decoded frame falls in; with ``windows`` > ``max_views``, windows grouped into equal runs."""

    stride: int
    every: Fraction | None  # seconds per window; None = ``stride`` frames per window
    max_views: int = 0
    windows: int = 0  # how many windows the whole video holds (known only when max_views asks for it)

    def window(self, index: int, seconds: Fraction) -> int:
        return index // self.stride if self.every is None else math.floor(seconds / self.every)

    def group(self, index: int, seconds: Fraction) -> int:
        window = self.window(index, seconds)
        return window * self.max_views // self.windows if self.max_views < self.windows else window


@dataclass(frozen=True)
class TimedFrame:
    group: int
    index: int  # in decoding (= presentation) order
    seconds: Fraction  # since the first frame
    frame: Any  # av.VideoFrame


def video_stream(container: Any, video: Path) -> Any:
    if not container.streams.video:
        raise CaptureError("unreadable_video", f"{video}: holds no video stream")
    return container.streams.video[0]


class DecodedFrames:
    """A video stream's frames in order, each with its time and group; ``count`` says how many came so far."""

    def __init__(self, container: Any, sampling: Sampling, video: Path):
        self.stream = video_stream(container, video)
        self.container, self.sampling, self.where = container, sampling, str(video)
        self.listed = self.stream.frames  # what the container's index promises; 0 when it does not say
        self.count = 0

    def seconds(self, frame: Any, index: int) -> Fraction:
        if frame.pts is not None and frame.time_base is not None:
            return frame.pts * frame.time_base
        rate = self.stream.average_rate or self.stream.guessed_rate
        if not rate:
            raise CaptureError("unreadable_video", f"{self.where}: frame {index} has no timestamp, the stream no rate")
        return index / rate

    def __iter__(self) -> Iterator[TimedFrame]:
        start = None
        for index, frame in enumerate(self.container.decode(self.stream)):
            self.count = index + 1
            seconds = self.seconds(frame, index)
            start = seconds if start is None else start
            yield TimedFrame(self.sampling.group(index, seconds - start), index, seconds - start, frame)


def count_windows(av: Any, video: Path, sampling: Sampling) -> int:
    """How many windows the video holds, from its packets (demuxed, not decoded: a quick first pass)."""
    with av.open(str(video)) as container:
        stream = video_stream(container, video)
        stamps = [packet.pts for packet in container.demux(stream) if packet.size]
        rate, time_base = stream.average_rate or stream.guessed_rate, stream.time_base
    if not stamps:
        return 0
    if all(stamp is not None for stamp in stamps):
        span = (max(stamps) - min(stamps)) * time_base
    else:
        span = (len(stamps) - 1) / rate if rate else Fraction(0)
    return sampling.window(len(stamps) - 1, span) + 1


def upright_view(item: TimedFrame, where: str, options: ConvertOptions) -> tuple[View, str]:
    """The frame as players show it, with assumed intrinsics, shrunk to ``max_side``; and the turn applied."""
    turn = display_turn(display_matrix(item.frame), where)
    image = np.ascontiguousarray(TURNS[turn](item.frame.to_ndarray(format="rgb24")))
    height, width = image.shape[:2]
    view = View(image, assumed_intrinsics(height, width, options.video.fov_deg), None, None)
    return limit_size(view, options.max_side), turn


def pick(window: Iterator[TimedFrame], min_sharpness: float) -> tuple[TimedFrame, float, str]:
    """The window's first frame, or (rejection on) its sharpest and its score; only the best one is held.

    Also says which frames the window spans (``"4-7"``), for the message when even the best is blurry.
    """
    first = chosen = last = next(window)
    if min_sharpness <= 0:
        return chosen, math.nan, str(first.index)
    best = sharpness(first.frame.to_ndarray(format="gray"))
    for last in window:
        score = sharpness(last.frame.to_ndarray(format="gray"))
        if score > best:  # the first of equal scores stays
            chosen, best = last, score
    return chosen, best, f"{first.index}-{last.index}"


@dataclass(frozen=True)
class TakenView:
    index: int
    seconds: Fraction
    sharpness: float  # NaN when not measured
    turn: str  # the TURNS key that made it upright
    frame: Frame


def take_views(decoded: DecodedFrames, video: Path, options: ConvertOptions) -> tuple[list[TakenView], list]:
    """One view per group of windows: its first frame, or its sharpest when that is sharp enough."""
    threshold = options.video.min_sharpness
    taken, blurry, done = [], [], set()
    for group, window in itertools.groupby(decoded, key=lambda item: item.group):
        if group in done or (options.max_views and len(done) >= options.max_views):
            continue  # timestamps going back, or more frames than the packet pass counted
        done.add(group)
        chosen, score, span = pick(window, threshold)
        if threshold > 0 and score < threshold:
            message = f"{video} frames {span}: the sharpest, {chosen.index}, scores {score:.1f}"
            blurry.append(CaptureError("blurry_frame", f"{message} < video.min_sharpness={threshold:g}"))
            continue
        where = f"{video} frame {chosen.index} ({float(chosen.seconds):.2f} s)"
        view, turn = upright_view(chosen, where, options)
        frame = Frame(video, where, view.intrinsics, pixels=view.image)
        taken.append(TakenView(chosen.index, chosen.seconds, score, turn, frame))
    return taken, blurry


def read_scene(video: Path, options: ConvertOptions) -> Capture:
    """Decode ``video`` once (after a packet pass when ``max_views`` needs its length) into its sampled views.

    Raises:
        CaptureError: ``unreadable_video`` for a file that cannot be opened or decoded, holds no video stream,
            or no frame; ``unsupported_rotation`` for a display matrix that is not a quarter turn or mirror.
    """
    av = import_av()
    seconds = options.video.every_seconds
    sampling = Sampling(options.stride, Fraction(str(seconds)) if seconds > 0 else None)
    try:
        if options.max_views:
            sampling = replace(sampling, max_views=options.max_views, windows=count_windows(av, video, sampling))
        with av.open(str(video)) as container:
            decoded = DecodedFrames(container, sampling, video)
            taken, blurry = take_views(decoded, video, options)
    except av.FFmpegError as error:
        raise CaptureError("unreadable_video", f"{video}: cannot decode ({error})") from None
    if not decoded.count:
        raise CaptureError("unreadable_video", f"{video}: no frame decodes")
    source = {
        "intrinsics": "assumed",
        "fov_deg": options.video.fov_deg,
        "frame_indices": [view.index for view in taken],
        "frame_seconds": [round(float(view.seconds), 4) for view in taken],
        "frames_decoded": decoded.count,
        "frames_listed": decoded.listed or None,  # None: the container does not say (Matroska, WebM)
        "display_turn": sorted({view.turn for view in taken}),
    }
    if options.video.min_sharpness > 0:
        source["frame_sharpness"] = [round(view.sharpness, 1) for view in taken]
    per_view = ("frame_indices", "frame_seconds", "frame_sharpness")
    return Capture([view.frame for view in taken], "none", "none", source, blurry, sampled=True, per_view=per_view)
