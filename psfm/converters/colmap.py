"""COLMAP sparse models: world-to-camera poses inverted to camera-to-world, perspective cameras undistorted.

One scene is a folder with the images in ``images/`` (``colmap.images=``) and a model in ``sparse/0``,
``sparse`` or the folder itself (``colmap.model=``). Poses are structure from motion: ``pose_source: colmap``
and ``metric_scale: none`` (the scale is arbitrary). Views are in natural order of the image names.
"""

from __future__ import annotations

from pathlib import Path

from psfm.converters.base import Capture, natural_key
from psfm.converters.colmap_model import cam_to_world, model_extension, pinhole, read_model
from psfm.converters.frames import CaptureError, Frame
from psfm.converters.options import ColmapOptions, ConvertOptions

LOOKS_FOR = "a folder with sparse/0, sparse or itself holding cameras + images .bin/.txt, or subfolders of such"
AUTO_MODEL_FOLDERS = ("sparse/0", "sparse", ".")


def model_folder(scene: Path, options: ColmapOptions) -> Path | None:
    candidates = [options.model] if options.model else AUTO_MODEL_FOLDERS
    for candidate in candidates:
        if model_extension(scene / candidate) is not None:
            return scene / candidate
    return None


def find_scenes(root: Path) -> list[Path]:
    options = ColmapOptions()
    if model_folder(root, options) is not None:
        return [root]
    children = [path for path in root.iterdir() if path.is_dir()] if root.is_dir() else []
    return sorted((path for path in children if model_folder(path, options)), key=lambda p: natural_key(p.name))


def read_scene(scene: Path, options: ConvertOptions) -> Capture:
    folder = model_folder(scene, options.colmap)
    if folder is None:
        raise CaptureError(
            "invalid_metadata", f"{scene}: no COLMAP model in {options.colmap.model or AUTO_MODEL_FOLDERS}"
        )
    model = read_model(folder, points=False)
    frames, skipped = [], []
    for image in sorted(model.images.values(), key=lambda image: natural_key(image.name)):
        where = f"{folder / ('images' + model.extension)} image {image.image_id} ({image.name})"
        try:
            camera = model.cameras.get(image.camera_id)
            if camera is None:
                raise CaptureError("invalid_metadata", f"{where}: camera {image.camera_id} is not in the model")
            intrinsics, distortion = pinhole(camera, f"{folder / ('cameras' + model.extension)}")
        except CaptureError as error:
            skipped.append(error)
            continue
        path = scene / options.colmap.images / image.name
        pose = cam_to_world(image)
        frames.append(Frame(path, where, intrinsics, pose, (camera.height, camera.width), distortion))
    return Capture(
        frames,
        pose_source="colmap",
        metric_scale="none",
        source={"model": str(folder.relative_to(scene)), "registered_images": len(model.images)},
        skipped=skipped,
    )
