"""Options every converter reads: which frames, how big, what to do with lens distortion, per-format knobs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from psfm.errors import UsageError, require_at_least

DISTORTION_POLICIES = ("undistort", "refuse")
IMAGE_FORMATS = ("jpg", "png")


@dataclass
class TransformsOptions:
    """nerfstudio / instant-ngp ``transforms.json``."""

    downscale_factor: int = 1  # read images_<n>/ beside images/ (nerfstudio's downscaled copies); 1 = originals
    pose_source: str = "colmap"  # what made the poses: colmap (ns-process-data, colmap2nerf) or gt (a sensor)

    def __post_init__(self) -> None:
        require_at_least(1, "transforms", downscale_factor=self.downscale_factor)
        if self.pose_source not in ("colmap", "gt", "predicted"):
            raise UsageError(f"transforms.pose_source={self.pose_source!r}: use colmap, gt or predicted")


@dataclass
class ColmapOptions:
    """COLMAP sparse models."""

    images: str = "images"  # image folder, relative to the scene folder
    model: str = ""  # model folder relative to the scene folder; "" tries sparse/0, sparse, then the folder itself


@dataclass
class ScanNetOptions:
    """ScanNet-style ``color/ depth/ pose/ intrinsic/`` folders."""

    depth: bool = True  # read depth/*.png (millimetres) into the shards
    instances: bool = True  # read instance-filt/*.png + <scene>.aggregation.json into masks and object labels
    structure_labels: list[str] = field(default_factory=lambda: ["wall", "floor", "ceiling"])  # stored as mask 0


def check_fov(section: str, fov_deg: float) -> None:
    if not 1.0 <= fov_deg <= 170.0:
        raise UsageError(f"{section}.fov_deg={fov_deg} must lie in [1, 170]")


@dataclass
class ImagesOptions:
    """Unposed image folders."""

    fov_deg: float = 60.0  # assumed field of view across the longer side: such captures carry no intrinsics

    def __post_init__(self) -> None:
        check_fov("images", self.fov_deg)


@dataclass
class VideoOptions:
    """Video files (PyAV), unposed like image folders."""

    every_seconds: float = 0.0  # one view per this many seconds of video; 0 = the shared stride over decoded frames
    min_sharpness: float = 0.0  # variance of the greyscale Laplacian a view needs; the sharpest frame of each
    # sampling window is taken (0 = off: the window's first frame, no rejection)
    fov_deg: float = 60.0  # assumed field of view across the longer side (videos carry no intrinsics)

    def __post_init__(self) -> None:
        check_fov("video", self.fov_deg)
        for name in ("every_seconds", "min_sharpness"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise UsageError(f"video.{name}={getattr(self, name)} cannot work: it must be a number, at least 0")


BOX_FRAME_FORMATS = ("scannet", "transforms", "colmap", "images", "video")


@dataclass
class BoxesOptions:
    """Scene annotation files (oriented boxes) -> scenes, with their frames when a capture folder is given."""

    pattern: str = "**/*.json"  # annotation files under input= (a folder); input= may also be one file
    frames: str | None = None  # folder holding each scene's capture as <frames>/<scene_id> (a folder or video file)
    frames_format: str = "scannet"  # how those captures are read: scannet | transforms | colmap | images | video
    instance_id_offset: int = 0  # added to the annotation's instance ids to match the frames' mask ids (ScanNet: 1)

    def __post_init__(self) -> None:
        if self.frames_format not in BOX_FRAME_FORMATS:
            raise UsageError(f"boxes.frames_format={self.frames_format!r}: use one of {', '.join(BOX_FRAME_FORMATS)}")


SFM = "sfm"  # pose_model=sfm: COLMAP through pycolmap (psfm.converters.sfm) instead of a user's model
SFM_CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")  # undistorted to pinhole
SFM_MATCHERS = ("auto", "exhaustive", "sequential")


@dataclass
class SfmOptions:
    """``pose_model=sfm``: structure from motion on each unposed scene's views (psfm.converters.sfm)."""

    camera_model: str = "SIMPLE_RADIAL"  # one COLMAP camera per scene; its lens distortion is resampled away
    matcher: str = "auto"  # exhaustive | sequential (each view with its next ones) | auto: sequential for long videos
    threads: int = 1  # feature extraction and matching threads; 1 gives the same poses on every run, -1 = all cores

    def __post_init__(self) -> None:
        if self.threads == 0 or self.threads < -1:
            raise UsageError(f"sfm.threads={self.threads}: use a positive count, or -1 for every core")
        if self.camera_model not in SFM_CAMERA_MODELS:
            raise UsageError(f"sfm.camera_model={self.camera_model!r}: use one of {', '.join(SFM_CAMERA_MODELS)}")
        if self.matcher not in SFM_MATCHERS:
            raise UsageError(f"sfm.matcher={self.matcher!r}: use one of {', '.join(SFM_MATCHERS)}")


@dataclass
class ConvertOptions:
    """Frame selection, size and distortion policy shared by every format, then each format's own options."""

    stride: int = 1  # keep every stride-th frame
    max_views: int = 0  # at most this many views per scene after the stride (0 = all; video: spread over it)
    max_side: int = 0  # shrink views whose longer side exceeds this (0 = keep the size)
    distortion: str = "undistort"  # undistort: resample to a pinhole image | refuse: skip distorted frames
    image_format: str = "jpg"
    jpeg_quality: int = 90
    pose_model: str | None = None  # unposed captures: sfm (COLMAP, sfm.py) or "package.module:factory" (poses.py)
    transforms: TransformsOptions = field(default_factory=TransformsOptions)
    colmap: ColmapOptions = field(default_factory=ColmapOptions)
    scannet: ScanNetOptions = field(default_factory=ScanNetOptions)
    images: ImagesOptions = field(default_factory=ImagesOptions)
    video: VideoOptions = field(default_factory=VideoOptions)
    boxes: BoxesOptions = field(default_factory=BoxesOptions)
    sfm: SfmOptions = field(default_factory=SfmOptions)

    def __post_init__(self) -> None:
        require_at_least(1, "", stride=self.stride)
        if self.video.every_seconds > 0 and self.stride > 1:
            raise UsageError(
                f"video.every_seconds={self.video.every_seconds} and stride={self.stride} both choose frames: set one"
            )
        require_at_least(0, "", max_views=self.max_views, max_side=self.max_side)
        if self.distortion not in DISTORTION_POLICIES:
            raise UsageError(f"distortion={self.distortion!r}: use one of {', '.join(DISTORTION_POLICIES)}")
        if self.image_format not in IMAGE_FORMATS:
            raise UsageError(f"image_format={self.image_format!r}: use jpg or png")
        if self.pose_model == SFM and self.distortion == "refuse" and "PINHOLE" not in self.sfm.camera_model:
            raise UsageError(
                f"pose_model=sfm with sfm.camera_model={self.sfm.camera_model} estimates lens distortion, which "
                "distortion=refuse would not resample: set sfm.camera_model=SIMPLE_PINHOLE (or PINHOLE)"
            )
