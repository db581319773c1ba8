"""Structure from motion for unposed captures (``pose_model=sfm``): COLMAP through pycolmap, on the views as written.

The scene's views, already shrunk to ``max_side`` and fitted to one size, go to a temporary folder as PNG; then
COLMAP's CPU pipeline: SIFT features, matching (every pair, or each view with its next ones for a long video:
``sfm.matcher``), incremental mapping. The largest reconstruction gives the poses: each registered image's
world-to-camera ``cam_from_world`` is inverted to OpenCV camera-to-world (``colmap_model.invert_world_to_camera``,
the same conversion as a COLMAP model on disk). Views COLMAP does not register are dropped, each named and
counted (``not_registered``); fewer than two registered views skip the scene (``sfm_failed``).

All views share one COLMAP camera (``sfm.camera_model``, default ``SIMPLE_RADIAL``), seeded with the assumed
intrinsics (``images.fov_deg``/``video.fov_deg``) as COLMAP's initial focal length, then refined by bundle
adjustment; the principal point stays at the image centre, as COLMAP keeps it by default. psfm's views are
pinhole, so a model with distortion has each view resampled to the pinhole camera with COLMAP's focal length
(``frames.undistort``, black where the lens saw nothing). The scene is written with ``pose_source: colmap``,
``metric_scale: none`` (SfM scale is arbitrary) and ``source.sfm``: how many views were given and registered and
which, the mean reprojection error, the camera model and its parameters, the matcher.

Reproducible: images get their COLMAP ids in view order, RANSAC and the mapper are seeded, and the mapper runs
on one thread (otherwise the poses change from run to run). Features and matches use ``sfm.threads`` (default
1: with more, a loaded machine once registered 4 views fewer of the same video; -1 uses every core, faster, not
reproducible). Scenes run in parallel with ``workers=``. pycolmap is imported here only, lazily
(``pip install 'psfm[colmap]'``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from psfm.converters.colmap_model import ColmapCamera, invert_world_to_camera, pinhole
from psfm.converters.frames import CaptureError, View, undistort
from psfm.converters.options import SfmOptions
from psfm.errors import UsageError

SEQUENTIAL_ABOVE = 40  # matcher=auto matches a video with more views than this sequentially (V^2 pairs get slow)
MIN_REGISTERED = 2
SEED = 0  # COLMAP's RANSAC and mapper seeds


def import_pycolmap() -> Any:
    """pycolmap, or a usage error naming the extra that installs it."""
    try:
        import pycolmap
    except ImportError:
        raise UsageError(
            "pose_model=sfm needs pycolmap: pip install 'psfm[colmap]' (or pip install pycolmap)"
        ) from None
    return pycolmap


@dataclass(frozen=True)
class Reconstruction:
    """What SfM made of a scene's V views."""

    views: list[View]  # the registered ones, in capture order, with COLMAP's poses and pinhole intrinsics
    registered: list[int]  # their indices among the V views given
    source: dict[str, Any]  # recorded as meta.json source.sfm


def choose_matcher(options: SfmOptions, views: int, sequential_capture: bool) -> str:
    if options.matcher != "auto":
        return options.matcher
    return "sequential" if sequential_capture and views > SEQUENTIAL_ABOVE else "exhaustive"


def _largest(reconstructions: dict[int, Any]) -> Any | None:
    return max(reconstructions.values(), key=lambda model: model.num_reg_images(), default=None)


def _placed(model: Any | None) -> dict[int, Any]:
    """View index -> COLMAP image, for the images ``model`` gave a pose (written as ``<index>.png``)."""
    if model is None:
        return {}
    return {int(Path(image.name).stem): image for image in model.images.values() if image.has_pose}


def _run_colmap(pycolmap: Any, folder: Path, views: list[View], options: SfmOptions, matcher: str) -> Any | None:
    """Features, matches and incremental mapping in ``folder``; the largest reconstruction or None."""
    height, width = views[0].image.shape[:2]
    images = folder / "images"
    images.mkdir()
    for index, view in enumerate(views):
        Image.fromarray(view.image).save(images / f"{index:06d}.png", compress_level=1)
    database = folder / "database.db"
    reader = pycolmap.ImageReaderOptions(
        camera_model=options.camera_model,
        default_focal_length_factor=float(views[0].intrinsics[0, 0]) / max(height, width),
    )
    cpu, single = pycolmap.Device.cpu, pycolmap.CameraMode.SINGLE
    # images imported first, so their ids follow the view order (extraction threads number them as they finish)
    pycolmap.Database.open(database).close()
    pycolmap.import_images(database, images, camera_mode=single, options=reader)
    # threads > 1 finish in another order under load, and the same views then gave other registrations
    extraction = pycolmap.FeatureExtractionOptions(num_threads=options.threads)
    pycolmap.extract_features(
        database, images, camera_mode=single, reader_options=reader, extraction_options=extraction, device=cpu
    )
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = SEED
    matching = pycolmap.FeatureMatchingOptions(num_threads=options.threads)
    match = pycolmap.match_sequential if matcher == "sequential" else pycolmap.match_exhaustive
    match(database, matching_options=matching, verification_options=verification, device=cpu)
    # one mapper thread: with more, the same views give different poses from run to run
    mapping = pycolmap.IncrementalPipelineOptions(min_model_size=MIN_REGISTERED, random_seed=SEED, num_threads=1)
    return _largest(pycolmap.incremental_mapping(database, images, folder / "sparse", options=mapping))


def reconstruct(views: list[View], where: str, options: SfmOptions, sequential_capture: bool = False) -> Reconstruction:
    """Poses and intrinsics of ``views`` (all one size) by COLMAP; the registered views, undistorted to pinhole.

    Args:
        sequential_capture: the views are consecutive frames (a video), so ``matcher=auto`` may match sequentially.

    Raises:
        CaptureError: ``sfm_failed`` when COLMAP raises or registers fewer than two views.
    """
    pycolmap = import_pycolmap()
    pycolmap.logging.minloglevel = pycolmap.logging.Level.ERROR.value  # COLMAP's INFO lines would bury psfm's
    pycolmap.set_random_seed(SEED)
    matcher = choose_matcher(options, len(views), sequential_capture)
    try:
        with tempfile.TemporaryDirectory(prefix="psfm-sfm-") as folder:
            model = _run_colmap(pycolmap, Path(folder), views, options, matcher)
    except Exception as error:  # COLMAP's errors come through as RuntimeError (or worse); this scene's, not the run's
        raise CaptureError("sfm_failed", f"{where}: COLMAP failed ({type(error).__name__}: {error})") from None
    registered_images = _placed(model)
    if len(registered_images) < MIN_REGISTERED:
        raise CaptureError(
            "sfm_failed",
            f"{where}: COLMAP registered {len(registered_images)} of {len(views)} views ({matcher} matching); "
            f"at least {MIN_REGISTERED} are needed (too little texture or overlap?)",
        )
    (camera,) = model.cameras.values()  # camera_mode SINGLE
    colmap_camera = ColmapCamera(camera.camera_id, camera.model_name, camera.width, camera.height, camera.params)
    intrinsics, distortion = pinhole(colmap_camera, where)
    registered = sorted(registered_images)
    posed = []
    for index in registered:
        cam_from_world = registered_images[index].cam_from_world()
        pose = invert_world_to_camera(cam_from_world.rotation.matrix(), cam_from_world.translation)
        image = views[index].image if distortion is None else undistort(views[index].image, intrinsics, distortion)
        posed.append(replace(views[index], image=image, intrinsics=intrinsics, cam_to_world=pose))
    source = {
        "views_given": len(views),
        "registered_images": len(registered),
        "registered_views": registered,  # indices among the views given (capture order, after stride and max_views)
        "mean_reprojection_error_px": round(float(model.compute_mean_reprojection_error()), 4),
        "camera_model": camera.model_name,
        "camera_params": [round(float(value), 6) for value in camera.params],
        "matcher": matcher,
        "points3d": int(model.num_points3D()),
        "pycolmap": pycolmap.__version__,
    }
    return Reconstruction(posed, registered, source)


def unregistered(reconstruction: Reconstruction, names: list[str]) -> list[tuple[str, str]]:
    """``(reason, message)`` for each view COLMAP left out, named as its frame is named."""
    kept = set(reconstruction.registered)
    return [
        ("not_registered", f"{name}: not registered by structure from motion (pose_model=sfm); view dropped")
        for index, name in enumerate(names)
        if index not in kept
    ]


def keep_per_view(source: dict[str, Any], keys: tuple[str, ...], kept: list[int]) -> dict[str, Any]:
    """``source`` with its per-view lists (``keys``) cut to the views kept."""
    return {name: [value[i] for i in kept] if name in keys else value for name, value in source.items()}
