"""Probe targets from annotations: patch depth, scene facts, and a clear message when a field is missing."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from psfm.probes.targets import (
    MissingAnnotation,
    camera_extent,
    categories_of,
    floor_area,
    object_count,
    patch_depth_median,
    room_height,
    seen_object_count,
    seen_objects,
)
from tests.probes.conftest import make_scenes, pose


def test_patch_depth_is_the_median_of_valid_pixels_per_patch():
    depth = torch.tensor(
        [
            [1.0, 2.0, 0.0, 0.0],
            [3.0, 0.0, 0.0, 0.0],  # top-left: median of 1, 2, 3; top-right: nothing valid
            [5.0, 5.0, 0.0, 0.0],
            [5.0, 9.0, 0.0, 7.0],  # bottom-left: median of 5, 5, 5, 9; bottom-right: only 7
        ]
    )
    result = patch_depth_median(depth, (2, 2))
    assert result.shape == (4,)
    assert result[0] == 2.0 and math.isnan(result[1]) and result[2] == 5.0 and result[3] == 7.0
    stacked = patch_depth_median(torch.stack([depth, 2 * depth]), (2, 2))  # leading dimensions pass through
    assert stacked.shape == (2, 4) and stacked[1, 0] == 4.0 and math.isnan(stacked[1, 1])


def test_patch_depth_orders_patches_row_major_on_a_wide_grid():
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(8.0), indexing="ij")
    depth = 1 + 10 * (rows // 2) + cols // 2  # patch (r, c) of 2 x 2 pixels holds 1 + 10 r + c
    assert patch_depth_median(depth, (2, 4)).tolist() == [1.0, 2.0, 3.0, 4.0, 11.0, 12.0, 13.0, 14.0]


METAS = [
    {
        "room": {"floor_area": 12.0, "size": [3.0, 4.0, 2.5]},
        "objects": [{"category": "chair"}, {"category": "table"}, {"category": "chair"}],
    },
    {"room": {"floor_area": 20.5, "size": [4.1, 5.0, 3.0]}, "objects": []},
    {"room": {"floor_area": 9.0, "size": [3.0, 3.0, 2.7]}, "objects": [{"category": "lamp"}]},
]


def scenes_with(metas: list[dict], **kwargs):
    return make_scenes(torch.eye(4).repeat(len(metas), 4, 1, 1), num_context=2, metas=metas, **kwargs)


def test_room_facts_from_meta():
    scenes = scenes_with(METAS)
    area, height = floor_area(scenes), room_height(scenes)
    assert area.values.tolist() == [[12.0], [20.5], [9.0]] and area.unit == "m²" and area.columns == ["floor_area"]
    assert height.values.tolist() == [[2.5], [3.0], [pytest.approx(2.7)]] and height.unit == "m"


def test_object_count_per_category_and_total():
    scenes = scenes_with(METAS)
    assert categories_of(scenes) == ["chair", "lamp", "table"]
    counts = object_count(scenes, ["chair", "table", "sofa"])  # columns come from the train split
    assert counts.columns == ["chair", "table", "sofa", "total"]
    assert counts.values.tolist() == [[2.0, 1.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


def placed(category: str, centre, size=(0.4, 0.4, 0.4)) -> dict:
    return {"category": category, "box": {"centroid": list(centre), "axes_lengths": list(size)}}


def seen_scene(objects: list[dict], views: int = 3) -> dict:
    return {"objects": objects, "views": [{"cam_to_world": torch.eye(4).tolist()} for _ in range(views)]}


def test_seen_object_count_counts_only_what_a_context_view_shows():
    """Cameras at the identity look along +z (f = 32, principal point at the image centre, 32 x 32 px)."""
    objects = [
        placed("chair", (0.0, 0.0, 3.0)),
        placed("chair", (0.2, -0.1, 2.0)),
        placed("table", (0.0, 0.0, -3.0)),  # behind every camera
        placed("table", (10.0, 0.0, 1.0)),  # projects to u = 336, right of the image
        {"category": "lamp"},  # no box: cannot be placed
    ]
    scenes = scenes_with([seen_scene(objects), seen_scene([placed("lamp", (0.0, 0.3, 1.0))])])
    counts = seen_object_count(scenes, ["chair", "table", "lamp"])
    assert counts.name == "seen_object_count" and counts.columns == ["chair", "table", "lamp", "total"]
    assert counts.values.tolist() == [[2.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 1.0]]
    assert object_count(scenes, ["chair", "table", "lamp"]).values[0, -1] == 5  # the whole room, seen or not


def test_an_object_behind_a_nearer_surface_is_not_seen_unless_another_view_shows_it():
    """A surface 1.2 m nearer than a 0.4 m box's centre hides it; one within its half-diagonal is the box itself."""
    objects = [placed("crate", (0.0, 0.0, 3.0)), placed("ball", (0.0, 0.0, 1.9))]
    depth = torch.full((1, 4, 32, 32), 1.8)  # every view shows a surface 1.8 m ahead
    scenes = replace(scenes_with([seen_scene(objects, views=4)]), depth=depth)
    assert [o["category"] for o, _ in seen_objects(scenes, 0, occlusion=True)] == ["ball"]
    assert len(seen_objects(scenes, 0)) == 2  # without occlusion both centres are in view
    assert len(seen_objects(replace(scenes, depth=None), 0, occlusion=True)) == 2  # no depth: frustum only

    depth[0, 1] = 0.0  # the second context view's depth is unknown: it hides nothing
    assert len(seen_objects(scenes, 0, occlusion=True)) == 2
    depth[0, 1] = float("nan")  # so is a NaN
    assert len(seen_objects(scenes, 0, occlusion=True)) == 2
    depth[0, 1] = 1.8
    unsized = {"category": "crate", "box": {"centroid": [0.0, 0.0, 3.0]}}  # no size: its own surface is unknown
    assert len(seen_objects(replace(scenes, metas=[seen_scene([unsized], views=4)]), 0, occlusion=True)) == 1
    depth[0, 1], depth[0, 2] = 1.8, 5.0  # the third view is not a context view (C = 2)
    assert len(seen_objects(scenes, 0, occlusion=True)) == 1


def test_occlusion_reads_the_depth_at_the_centres_pixel_row_v_column_u():
    """A surface 1 m ahead fills the top 8 rows: it hides a centre at (u, v) = (28.8, 3.2), not (3.2, 28.8)."""
    top_right, bottom_left = placed("crate", (1.2, -1.2, 3.0)), placed("ball", (-1.2, 1.2, 3.0))
    depth = torch.full((1, 4, 32, 32), 9.0)
    depth[..., :8, :] = 1.0
    scenes = replace(scenes_with([seen_scene([top_right, bottom_left], views=4)]), depth=depth)
    assert [o["category"] for o, _ in seen_objects(scenes, 0, occlusion=True)] == ["ball"]


def test_camera_extent_spans_the_context_cameras_in_metres():
    """Context cameras at (0,0,0), (1,0,0), (0,2,0) normalized units, 2 m per unit; the far target view is not seen."""
    eye = torch.eye(3)
    scene = torch.stack([pose(eye, [0, 0, 0]), pose(eye, [1, 0, 0]), pose(eye, [0, 2, 0]), pose(eye, [100, 0, 0])])
    scenes = make_scenes(scene[None].repeat(2, 1, 1, 1), num_context=3, pose_scale=torch.tensor([2.0, 0.5]))
    extent = camera_extent(scenes)
    assert extent.values.shape == (2, 1) and extent.unit == "m"
    assert torch.allclose(extent.values[:, 0], torch.tensor([2 * math.sqrt(5), 0.5 * math.sqrt(5)]))


def test_missing_annotations_name_the_field_and_a_scene():
    no_room = scenes_with([METAS[0], {"objects": []}])
    with pytest.raises(MissingAnnotation, match=r"room\.floor_area is missing in 1 scene\(s\), e\.g\. scene_001"):
        floor_area(no_room)
    no_size = scenes_with([METAS[0], {"room": {"floor_area": 3.0}, "objects": []}])
    with pytest.raises(MissingAnnotation, match=r"room\.size .*scene_001"):
        room_height(no_size)
    assert floor_area(no_size).values.shape == (2, 1)  # the field that is there still works
    no_objects = scenes_with([METAS[0], METAS[1], {"room": METAS[2]["room"]}])
    with pytest.raises(MissingAnnotation, match=r"objects is missing in scene scene_002"):
        object_count(no_objects, ["chair"])
    with pytest.raises(MissingAnnotation, match=r"views\[\]\.cam_to_world is missing in scene scene_000"):
        seen_object_count(no_objects, ["chair"])
    posed = scenes_with([seen_scene([]), {"views": seen_scene([])["views"]}])
    with pytest.raises(MissingAnnotation, match=r"objects is missing in scene scene_001"):
        seen_object_count(posed, ["chair"])
    assert issubclass(MissingAnnotation, ValueError)
