"""Carving lifted boxes with free space and labelled silhouettes, on exact renders of hand-built scenes."""

from __future__ import annotations

import numpy as np

from psfm.geometry import intrinsics_from_fov, look_at
from psfm.qa.boxes import iou_3d
from psfm.qa.lifting.carve import MIN_MARGIN_M, CarvingView, carve_box
from psfm.worlds.render import render_view
from psfm.worlds.scene import Camera, OrientedBox, Room, SceneObject

CONE = OrientedBox((0.0, 0.0, 0.3), (0.5, 0.5, 0.6), 0.0)


def room() -> Room:
    return Room(
        size=(8.0, 8.0, 3.0),
        floor_pattern="plain",
        floor_colors=((0.7, 0.7, 0.7), (0.4, 0.4, 0.4)),
        floor_scale=0.5,
        wall_colors=((0.8, 0.8, 0.8),) * 4,
        ceiling_color=(0.9, 0.9, 0.9),
        light_direction=(0.0, 0.0, 1.0),
        ambient=0.4,
    )


def thing(instance_id: int, shape: str, box: OrientedBox) -> SceneObject:
    return SceneObject(instance_id, shape, shape, "red", (0.8, 0.1, 0.1), box)


def views(
    objects: list[SceneObject], azimuths_deg: list[float], size: int = 96, margin: float = MIN_MARGIN_M
) -> list[CarvingView]:
    """Cameras 2.5 m from the origin at 1.4 m, looking at the cone's middle; labels are the instance ids."""
    out = []
    for azimuth in np.deg2rad(azimuths_deg):
        eye = np.array([2.5 * np.cos(azimuth), 2.5 * np.sin(azimuth), 1.4])
        camera = Camera(intrinsics_from_fov(size, size, 60.0), look_at(eye, np.array([0.0, 0.0, 0.3])), size, size)
        view = render_view(room(), objects, camera)
        depth = view.depth.astype(np.float64)
        out.append(
            CarvingView(depth, np.full(depth.shape, margin), camera.intrinsics, camera.cam_to_world, view.instance)
        )
    return out


def test_a_cone_keeps_its_base():
    """Only the lowest levels of a cone's outer columns are occupied; they must not be carved (an earlier
    rule that let only the upper three quarters vote on columns cut the base to 3/4 of its width)."""
    carved = carve_box(CONE, 1, views([thing(1, "cone", CONE)], [0, 40, 80, 120]))
    assert carved.size[0] > 0.45 and carved.size[1] > 0.45
    assert iou_3d(carved, CONE) > 0.85


def test_silhouettes_carve_an_inflated_box_down_to_the_object():
    """Beside the cone, just above the floor, free space cannot carve with the margin noisy depth calls for
    (the floor lies within it behind every sample there); the silhouette can: those pixels show the floor."""
    inflated = OrientedBox((0.1, -0.05, 0.35), (0.8, 0.75, 0.7), 0.0)
    assert iou_3d(inflated, CONE) < 0.45
    noisy = views([thing(1, "cone", CONE)], [0, 40, 80, 120], margin=0.2)
    assert iou_3d(carve_box(inflated, 1, noisy), CONE) > 0.75
    # one label everywhere (no silhouette): only free space carves, and the low samples keep every column
    blind = [CarvingView(v.depth, v.margin, v.intrinsics, v.cam_to_world, np.ones_like(v.labels)) for v in noisy]
    assert carve_box(inflated, 1, blind).size[:2] == inflated.size[:2]


def test_what_an_occluder_hides_is_not_carved():
    """A crate in front hides the cone's lower part from the only view: its pixels show something else,
    but in front of the cone, so they say nothing about it."""
    crate = OrientedBox((0.65, 0.0, 0.2), (0.2, 1.0, 0.4), 0.0)
    carved = carve_box(CONE, 1, views([thing(1, "cone", CONE), thing(2, "box", crate)], [0]))
    assert carved.size[2] > 0.55 and carved.center[2] - carved.size[2] / 2 < 0.01
    assert iou_3d(carved, CONE) > 0.85
