"""ScanNet-style folders: OpenCV poses as they are, millimetre depth at another resolution, bad poses skipped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from psfm.converters.base import convert
from psfm.converters.options import ConvertOptions, ScanNetOptions
from psfm.geometry import backproject
from tests.converters.captures import (
    RenderedScene,
    assert_cameras_round_trip,
    read_masks,
    read_shards,
    rendered,
    save_png,
)

FRAME_NAMES = ["0", "5", "10", "15"]  # natural order differs from string order
STRUCTURE = ["wall", "floor", "ceiling"]  # annotated in ScanNet like furniture: objectIds 0, 1, 2 here
FIRST_OBJECT = len(STRUCTURE)  # world object i is objectId i + 2, its pixels i + 3 (objectId + 1)


def write_matrix(path: Path, matrix: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, matrix)


def scannet_instances(scene: RenderedScene, view: int) -> np.ndarray:
    """An ``instance-filt`` image: room pixels as the wall, floor or ceiling instance, objects renumbered."""
    height = backproject(scene.depths[view], scene.intrinsics[view], scene.cam_to_world[view])[..., 2]
    room = np.where(height < 0.01, 2, np.where(height > scene.room_height - 0.01, 3, 1))
    world = scene.instances[view]
    return np.where(world == 0, room, world + FIRST_OBJECT).astype(np.uint8)


def write_aggregation(path: Path, scene: RenderedScene) -> None:
    groups = [{"id": i, "objectId": i, "segments": [], "label": label} for i, label in enumerate(STRUCTURE)]
    for instance_id, category in sorted(scene.categories.items()):
        object_id = instance_id + FIRST_OBJECT - 1
        groups.append({"id": object_id, "objectId": object_id, "segments": [], "label": category})
    path.write_text(json.dumps({"sceneId": path.parent.name, "appId": "test", "segGroups": groups}))


def write_scannet(folder: Path, scene: RenderedScene, depth_scale: int = 2, instances: bool = True) -> Path:
    """SensReader's export: depth at 1/``depth_scale`` of the colour resolution, with its own intrinsics; with
    ``instances``, the scan's ``_2d-instance-filt.zip`` unzipped beside it and its ``aggregation.json``."""
    for index, (name, image, depth, pose) in enumerate(
        zip(FRAME_NAMES, scene.images, scene.depths, scene.cam_to_world, strict=True)
    ):
        save_png(folder / "color" / f"{name}.png", image)
        small = depth[::depth_scale, ::depth_scale]
        save_png(folder / "depth" / f"{name}.png", np.round(small * 1000).astype(np.uint16))
        write_matrix(folder / "pose" / f"{name}.txt", pose)
        if instances:
            save_png(folder / "instance-filt" / f"{name}.png", scannet_instances(scene, index))
    if instances:
        write_aggregation(folder / f"{folder.name}.aggregation.json", scene)
    color = np.eye(4)
    color[:3, :3] = scene.intrinsics[0]
    write_matrix(folder / "intrinsic" / "intrinsic_color.txt", color)
    write_matrix(
        folder / "intrinsic" / "intrinsic_depth.txt", np.diag([1 / depth_scale, 1 / depth_scale, 1, 1]) @ color
    )
    return folder


def test_poses_intrinsics_and_half_resolution_depth_round_trip(tmp_path):
    scene = rendered(0)
    write_scannet(tmp_path / "scene0000_00", scene)
    report = convert(
        "scannet", tmp_path / "scene0000_00", tmp_path / "out", ConvertOptions(image_format="png"), progress=False
    )
    assert report.written == 1 and report.views == 4
    ((meta, images, depths),) = read_shards(tmp_path / "out").values()
    assert meta.scene_id == "scene0000_00" and meta.pose_source == "gt" and meta.metric_scale == "sensor_depth"
    assert_cameras_round_trip(meta, scene)
    for image, depth, original_image, original_depth in zip(images, depths, scene.images, scene.depths, strict=True):
        np.testing.assert_array_equal(image, original_image)
        assert depth.shape == image.shape[:2] == (48, 64)
        nearest = np.repeat(np.repeat(original_depth[::2, ::2], 2, axis=0), 2, axis=1)  # the depth pixel each sits in
        np.testing.assert_allclose(depth, nearest, atol=1.01e-3)  # millimetre PNG, twice


def test_depth_at_a_non_integer_ratio_is_sampled_at_pixel_centres(tmp_path):
    """Depth 1.5x larger than colour, each depth pixel holding its own (row, column): which one each colour
    pixel gets shows where its centre lands (an off-by-half-pixel resample picks other ones)."""
    folder = write_scannet(tmp_path / "scene", rendered(0))
    rows, columns = np.mgrid[0:72, 0:96]
    coded = (1000 + 100 * rows + columns).astype(np.uint16)  # millimetres: 1 m + 10 cm per row + 1 mm per column
    for name in FRAME_NAMES:
        save_png(folder / "depth" / f"{name}.png", coded)
    color = np.loadtxt(folder / "intrinsic" / "intrinsic_color.txt")
    write_matrix(folder / "intrinsic" / "intrinsic_depth.txt", np.diag([1.5, 1.5, 1, 1]) @ color)
    convert("scannet", folder, tmp_path / "out", ConvertOptions(image_format="png"), progress=False)
    ((_, _, depths),) = read_shards(tmp_path / "out").values()
    v, u = np.mgrid[0:48, 0:64]
    expected = coded[np.floor((v + 0.5) * 1.5).astype(int), np.floor((u + 0.5) * 1.5).astype(int)] / 1000
    np.testing.assert_allclose(depths[0], expected, atol=1e-6)


def test_infinite_and_nan_poses_are_skipped_and_counted(tmp_path):
    folder = write_scannet(tmp_path / "scene", rendered(0))
    (folder / "pose" / "5.txt").write_text("-inf -inf -inf -inf\n" * 4)
    (folder / "pose" / "15.txt").write_text("nan 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    report = convert("scannet", folder, tmp_path / "out", ConvertOptions(image_format="png"), progress=False)
    assert report.written == 1 and report.views == 2 and report.skipped_frames == {"non_finite_pose": 2}
    assert any(str(folder / "pose" / "5.txt") in problem for problem in report.problems)
    ((meta, _, _),) = read_shards(tmp_path / "out").values()
    assert_cameras_round_trip(meta, rendered(0), views=[0, 2])


def test_stride_keeps_every_other_frame_and_depth_can_be_left_out(tmp_path):
    folder = write_scannet(tmp_path / "scene", rendered(0))
    options = ConvertOptions(stride=2, image_format="png", scannet=ScanNetOptions(depth=False))
    convert("scannet", folder, tmp_path / "out", options, progress=False)
    ((meta, _, depths),) = read_shards(tmp_path / "out").values()
    assert_cameras_round_trip(meta, rendered(0), views=[0, 2])
    assert depths == [None, None]


def test_a_missing_intrinsics_file_skips_the_scene_naming_it(tmp_path):
    write_scannet(tmp_path / "root" / "scene0000_00", rendered(0))
    bad = write_scannet(tmp_path / "root" / "scene0001_00", rendered(1))
    (bad / "intrinsic" / "intrinsic_color.txt").unlink()
    report = convert("scannet", tmp_path / "root", tmp_path / "out", progress=False)
    assert report.written == 1 and report.skipped_scenes == {"invalid_metadata": 1}
    assert report.problems == [f"{bad / 'intrinsic' / 'intrinsic_color.txt'}: not found"]


def test_instance_masks_keep_objects_and_give_the_room_structure_id_0(tmp_path):
    """Masks are ScanNet's ids (objectId + 1) for objects and 0 for wall, floor and ceiling; the labels are objects."""
    scene = rendered(0)
    write_scannet(tmp_path / "scene0000_00", scene)
    report = convert(
        "scannet", tmp_path / "scene0000_00", tmp_path / "out", ConvertOptions(image_format="png"), progress=False
    )
    assert report.written == 1 and not report.skipped_frames
    ((meta, _, _),) = read_shards(tmp_path / "out").values()
    objects = {record["instance_id"]: record["category"] for record in meta.objects}
    assert objects == {instance_id + FIRST_OBJECT: category for instance_id, category in scene.categories.items()}
    assert meta.raw["source"]["aggregation"] == "scene0000_00.aggregation.json"
    for view, world in zip(read_masks(tmp_path / "out"), scene.instances, strict=True):
        np.testing.assert_array_equal(view, np.where(world == 0, 0, world + FIRST_OBJECT))


def test_structure_labels_decide_what_is_room(tmp_path):
    write_scannet(tmp_path / "scene", rendered(0))
    options = ConvertOptions(image_format="png", scannet=ScanNetOptions(structure_labels=["wall"]))
    convert("scannet", tmp_path / "scene", tmp_path / "out", options, progress=False)
    ((meta, _, _),) = read_shards(tmp_path / "out").values()
    assert {"floor", "ceiling"} <= {record["category"] for record in meta.objects}
    floor = np.concatenate([mask.ravel() for mask in read_masks(tmp_path / "out")]) == 2
    assert floor.any()  # the floor keeps its instance id when it is not called structure


def test_without_the_aggregation_the_scene_is_skipped_naming_it_unless_instances_are_off(tmp_path):
    folder = write_scannet(tmp_path / "scene0000_00", rendered(0))
    (folder / "scene0000_00.aggregation.json").unlink()
    report = convert("scannet", folder, tmp_path / "out", progress=False)
    assert report.written == 0 and report.skipped_scenes == {"invalid_metadata": 1}
    assert str(folder / "scene0000_00.aggregation.json") in report.problems[0]
    options = ConvertOptions(scannet=ScanNetOptions(instances=False))
    assert convert("scannet", folder, tmp_path / "off", options, progress=False).written == 1
    ((meta, _, _),) = read_shards(tmp_path / "off").values()
    assert meta.objects is None and all(view.mask is None for view in meta.views)


def test_a_missing_instance_image_skips_its_frame(tmp_path):
    folder = write_scannet(tmp_path / "scene", rendered(0))
    (folder / "instance-filt" / "10.png").unlink()
    report = convert("scannet", folder, tmp_path / "out", progress=False)
    assert report.views == 3 and report.skipped_frames == {"missing_mask": 1}
    assert str(folder / "instance-filt" / "10.png") in report.problems[0]
