"""Tests for the analytic ray caster: exact depths, masks that agree with the geometry, occlusion, determinism.

Scenes are built by hand from the dataclasses so the renderer is checked against closed-form answers, not against
another sampler. Odd image sizes put a pixel centre exactly on the optical axis (principal point at W/2, pixel
centres at +0.5), which makes "the central pixel's depth" an exact analytic number.
"""

from __future__ import annotations

import numpy as np
import pytest

from psfm.geometry import backproject, intrinsics_from_fov, look_at, project
from psfm.worlds.render import RenderedView, render_scene, render_view
from psfm.worlds.scene import Camera, OrientedBox, Room, Scene, SceneObject
from psfm.worlds.shapes import table_parts

ROOM_SIZE = (8.0, 7.0, 3.0)


def make_room(pattern: str = "checker") -> Room:
    light = np.array([0.3, -0.4, 0.87])
    return Room(
        size=ROOM_SIZE,
        floor_pattern=pattern,
        floor_colors=((0.8, 0.75, 0.7), (0.3, 0.3, 0.35)),
        floor_scale=0.8,
        wall_colors=((0.9, 0.85, 0.8), (0.7, 0.8, 0.9), (0.85, 0.9, 0.75), (0.9, 0.8, 0.85)),
        ceiling_color=(0.95, 0.95, 0.95),
        light_direction=tuple(light / np.linalg.norm(light)),
        ambient=0.4,
    )


def make_camera(eye, target, size: int = 65, fov: float = 60.0) -> Camera:
    return Camera(intrinsics_from_fov(size, size, fov), look_at(np.asarray(eye), np.asarray(target)), size, size)


def make_object(instance_id: int, shape: str, center, size, yaw: float = 0.0, color=(0.6, 0.3, 0.2)) -> SceneObject:
    box = OrientedBox(center=tuple(center), size=tuple(size), yaw=yaw)
    return SceneObject(instance_id, shape, shape, "test", tuple(color), box)


def centre_pixel(view: RenderedView) -> tuple[int, int]:
    h, w = view.depth.shape
    return h // 2, w // 2


def to_local(points: np.ndarray, box: OrientedBox) -> np.ndarray:
    """World points [N, 3] in the box's frame [N, 3]."""
    return (points - np.asarray(box.center)) @ box.rotation


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise hull [K, 2] of 2D points (monotone chain)."""
    pts = sorted(map(tuple, points))

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and np.cross(np.subtract(out[-1], out[-2]), np.subtract(p, out[-2])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(half(pts) + half(reversed(pts)))


def inside_hull(points: np.ndarray, hull: np.ndarray, slack: float) -> np.ndarray:
    """Whether each point [N, 2] is inside the CCW hull, allowing ``slack`` pixels outside each edge."""
    edges = np.roll(hull, -1, axis=0) - hull  # [K, 2]
    rel = points[:, None, :] - hull[None]  # [N, K, 2]
    cross = edges[None, :, 0] * rel[..., 1] - edges[None, :, 1] * rel[..., 0]
    return np.all(cross >= -slack * np.linalg.norm(edges, axis=1)[None], axis=1)


def test_floor_depth_from_a_camera_looking_straight_down():
    height = 1.7
    camera = make_camera([0.3, -0.2, height], [0.3, -0.2, 0.0], size=64, fov=70.0)
    view = render_view(make_room(), [], camera)
    np.testing.assert_allclose(view.depth, height, atol=1e-4)
    assert np.all(view.instance == 0)


def test_walls_and_ceiling_depth_is_the_room_exit():
    camera = make_camera([1.0, 0.5, 1.5], [4.0, 0.5, 1.5], size=33)  # looking at the +x wall
    view = render_view(make_room(), [], camera)
    assert view.depth[16, 16] == pytest.approx(ROOM_SIZE[0] / 2 - 1.0, abs=1e-4)
    points = backproject(view.depth, camera.intrinsics, camera.cam_to_world).reshape(-1, 3)
    lower, upper = make_room().bounds
    gap = np.minimum(np.abs(points - lower), np.abs(points - upper)).min(axis=1)
    assert gap.max() < 1e-3


@pytest.mark.parametrize("yaw, size", [(0.0, (1.0, 0.6, 1.0)), (np.pi / 2, (0.6, 1.0, 1.0)), (np.pi, (1.0, 0.6, 1.0))])
def test_front_face_of_a_box_has_the_analytic_depth(yaw, size):
    camera = make_camera([0.0, -2.0, 1.0], [0.0, 0.0, 1.0])  # horizontal, looking along +y
    box = make_object(7, "box", (0.0, 1.0, 1.0), size, yaw=yaw)
    view = render_view(make_room(), [box], camera)
    r, c = centre_pixel(view)
    front = 1.0 - 0.3  # the face at y = 0.7 faces the camera at y = -2
    np.testing.assert_allclose(view.depth[r - 2 : r + 3, c - 2 : c + 3], front + 2.0, atol=1e-4)
    assert np.all(view.instance[r - 2 : r + 3, c - 2 : c + 3] == 7)


def test_box_mask_matches_its_projected_corners():
    obj = make_object(3, "box", (0.4, 1.2, 0.5), (1.1, 0.7, 0.6), yaw=0.5)
    camera = make_camera([-1.0, -2.0, 1.6], [0.3, 1.0, 0.4], size=97, fov=70.0)
    view = render_view(make_room(), [obj], camera)
    uv, z = project(obj.box.corners(), camera.intrinsics, camera.cam_to_world)
    assert np.all(z > 0)
    rows, cols = np.nonzero(view.instance == 3)
    centres = np.stack([cols + 0.5, rows + 0.5], axis=1)
    hull = convex_hull(uv)
    assert inside_hull(centres, hull, slack=0.01).all()
    # the silhouette of a box is the hull of its corners, so the mask spans it to within a pixel
    np.testing.assert_allclose(centres.min(axis=0), uv.min(axis=0), atol=1.0)
    np.testing.assert_allclose(centres.max(axis=0), uv.max(axis=0), atol=1.0)
    assert len(rows) > 0.9 * polygon_area(hull)


def polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def surface_samples(obj: SceneObject, n: int = 4000) -> np.ndarray:
    """World points [N, 3] densely covering the object's surface (its silhouette is the hull of their images)."""
    box = obj.box
    half = np.asarray(box.size) / 2
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([np.cos(angle), np.sin(angle)], axis=1)  # [n, 2]
    if obj.shape == "table":
        parts = table_parts(box.center, box.size, box.yaw)
        return np.concatenate([OrientedBox(c, tuple(2 * np.asarray(h)), box.yaw).corners() for c, h in parts])
    if obj.shape == "sphere":
        lat = np.linspace(-np.pi / 2, np.pi / 2, 200)
        lon = np.linspace(0, 2 * np.pi, 200)
        la, lo = np.meshgrid(lat, lon)
        unit = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1).reshape(-1, 3)
        local = unit * half
    elif obj.shape in ("cylinder", "cone"):
        z = np.linspace(-1, 1, 41)
        scale = np.ones_like(z) if obj.shape == "cylinder" else (1 - z) / 2
        rings = ring[None] * half[:2] * scale[:, None, None]  # [41, n, 2]
        local = np.concatenate([rings, np.broadcast_to(z[:, None, None] * half[2], (41, n, 1))], axis=-1)
        local = local.reshape(-1, 3)
    else:
        raise ValueError(obj.shape)
    return local @ box.rotation.T + np.asarray(box.center)


@pytest.mark.parametrize("shape", ["cylinder", "sphere", "cone", "table"])
def test_round_shapes_fill_their_analytic_silhouette(shape):
    size = (0.8, 0.8, 0.8) if shape != "table" else (1.2, 0.8, 0.75)
    obj = make_object(5, shape, (0.2, 1.0, size[2] / 2), size, yaw=0.3)
    camera = make_camera([-0.8, -1.5, 1.5], [0.2, 1.0, 0.3], size=97, fov=70.0)
    view = render_view(make_room(), [obj], camera)
    rows, cols = np.nonzero(view.instance == 5)
    assert len(rows) > 50
    centres = np.stack([cols + 0.5, rows + 0.5], axis=1)
    corners_uv, _ = project(obj.box.corners(), camera.intrinsics, camera.cam_to_world)
    assert inside_hull(centres, convex_hull(corners_uv), slack=0.01).all()
    surface_uv, _ = project(surface_samples(obj), camera.intrinsics, camera.cam_to_world)
    assert np.all(centres.min(axis=0) >= surface_uv.min(axis=0) - 0.01)
    assert np.all(centres.max(axis=0) <= surface_uv.max(axis=0) + 0.01)
    np.testing.assert_allclose(centres.min(axis=0), surface_uv.min(axis=0), atol=1.0)
    np.testing.assert_allclose(centres.max(axis=0), surface_uv.max(axis=0), atol=1.0)


def surface_distance(shape: str, local: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Metres from local points [N, 3] to the surface of the shape inscribed in a box of half extents ``half``."""
    x, y, z = local.T
    if shape == "box":
        return np.abs(np.abs(local) - half).min(axis=1)
    if shape == "sphere":  # exact for spheres, which is what the tests use
        return np.abs(np.linalg.norm(local, axis=1) - half[0])
    radial = np.hypot(x, y)
    if shape == "cylinder":
        return np.minimum(np.abs(radial - half[0]), np.abs(np.abs(z) - half[2]))
    if shape == "cone":  # distance along the horizontal to the side, or to the base plane
        w = (half[2] - z) / (2 * half[2])
        return np.minimum(np.abs(radial - w * half[0]), np.abs(z + half[2]))
    raise ValueError(shape)


def mixed_scene_objects() -> list[SceneObject]:
    return [
        make_object(1, "box", (-1.5, 1.0, 0.4), (0.8, 0.6, 0.8), yaw=0.7),
        make_object(2, "cylinder", (-0.4, 1.8, 0.5), (0.6, 0.6, 1.0), yaw=0.2),
        make_object(3, "sphere", (0.6, 0.9, 0.35), (0.7, 0.7, 0.7), yaw=1.1),
        make_object(4, "cone", (1.5, 1.6, 0.45), (0.7, 0.7, 0.9), yaw=0.0),
        make_object(5, "table", (0.2, 2.8, 0.375), (1.4, 0.8, 0.75), yaw=-0.3),
    ]


def test_backprojected_pixels_lie_on_their_objects_and_room_pixels_on_the_room():
    objects = mixed_scene_objects()
    camera = make_camera([0.0, -2.5, 1.5], [0.0, 1.5, 0.4], size=129, fov=75.0)
    room = make_room()
    view = render_view(room, objects, camera)
    points = backproject(view.depth, camera.intrinsics, camera.cam_to_world)  # [H, W, 3]
    for obj in objects:
        mask = view.instance == obj.instance_id
        assert mask.sum() > 30, obj.shape
        local = to_local(points[mask], obj.box)
        half = np.asarray(obj.box.size) / 2
        assert np.all(np.abs(local) <= half + 1e-3), obj.shape
        if obj.shape != "table":
            assert surface_distance(obj.shape, local, half).max() < 1e-3, obj.shape
    room_points = points[view.instance == 0]
    lower, upper = room.bounds
    gap = np.minimum(np.abs(room_points - lower), np.abs(room_points - upper)).min(axis=1)
    assert gap.max() < 1e-3


def test_nearer_object_hides_the_farther_one():
    camera = make_camera([0.0, -2.0, 0.5], [0.0, 0.0, 0.5])
    far = make_object(1, "box", (0.0, 2.0, 0.5), (1.5, 0.5, 1.0), color=(0.1, 0.2, 0.9))
    near = make_object(2, "box", (0.3, 0.0, 0.5), (0.6, 0.4, 1.0), color=(0.9, 0.2, 0.1))
    view = render_view(make_room(), [far, near], camera)
    r, c = centre_pixel(view)
    near_col = c + 8  # in front of both
    assert view.instance[r, near_col] == 2
    assert view.depth[r, near_col] == pytest.approx(2.0 - 0.2, abs=1e-4)
    far_col = c - 8  # only the far box
    assert view.instance[r, far_col] == 1
    assert view.depth[r, far_col] == pytest.approx(2.0 + 1.75, abs=1e-4)
    assert np.any(view.instance == 1) and np.any(view.instance == 2)
    swapped = render_view(make_room(), [near, far], camera)  # order of objects must not matter
    np.testing.assert_array_equal(swapped.depth, view.depth)
    np.testing.assert_array_equal(swapped.instance, view.instance)
    np.testing.assert_array_equal(swapped.rgb, view.rgb)


def test_sphere_centre_depth_is_distance_minus_radius():
    camera = make_camera([0.5, -2.0, 0.9], [0.5, 1.0, 0.9])
    sphere = make_object(4, "sphere", (0.5, 1.0, 0.9), (0.8, 0.8, 0.8), yaw=0.9)
    view = render_view(make_room(), [sphere], camera)
    r, c = centre_pixel(view)
    assert view.instance[r, c] == 4
    assert view.depth[r, c] == pytest.approx(3.0 - 0.4, abs=1e-4)


def test_cylinder_side_and_cap_depths():
    cylinder = make_object(6, "cylinder", (0.0, 1.0, 0.6), (0.5, 0.5, 1.2), yaw=0.4)
    side = render_view(make_room(), [cylinder], make_camera([0.0, -1.0, 0.6], [0.0, 1.0, 0.6]))
    r, c = centre_pixel(side)
    assert side.instance[r, c] == 6
    assert side.depth[r, c] == pytest.approx(2.0 - 0.25, abs=1e-4)
    top = render_view(make_room(), [cylinder], make_camera([0.1, 1.05, 2.5], [0.1, 1.05, 0.0]))
    r, c = centre_pixel(top)
    assert top.instance[r, c] == 6
    assert top.depth[r, c] == pytest.approx(2.5 - 1.2, abs=1e-4)


def test_cone_side_depth_shrinks_towards_the_apex():
    cone = make_object(8, "cone", (0.0, 1.0, 0.5), (0.6, 0.6, 1.0))
    for z, radius in [(0.5, 0.15), (0.25, 0.225), (0.9, 0.03)]:  # radius = 0.3 * (top - z) / height
        view = render_view(make_room(), [cone], make_camera([0.0, -1.0, z], [0.0, 1.0, z]))
        r, c = centre_pixel(view)
        assert view.instance[r, c] == 8
        assert view.depth[r, c] == pytest.approx(2.0 - radius, abs=1e-4)
    above = render_view(make_room(), [cone], make_camera([0.0, 1.0, 1.0], [0.0, 3.0, 1.0]))  # above the apex
    assert above.instance[centre_pixel(above)] == 0


def test_table_is_a_top_on_legs_not_a_solid_box():
    size, center, yaw = (1.2, 0.8, 0.75), (0.0, 1.0, 0.375), 0.0
    table = make_object(9, "table", center, size, yaw=yaw)
    top_center, top_half = table_parts(center, size, yaw)[0]
    from_above = render_view(make_room(), [table], make_camera([0.0, 1.0, 2.0], [0.0, 1.0, 0.0]))
    r, c = centre_pixel(from_above)
    assert from_above.instance[r, c] == 9
    assert from_above.depth[r, c] == pytest.approx(2.0 - size[2], abs=1e-4)
    assert top_center[2] + top_half[2] == pytest.approx(size[2])
    under = render_view(make_room(), [table], make_camera([0.0, -1.0, 0.3], [0.0, 1.0, 0.3]))  # between the legs
    assert under.instance[centre_pixel(under)] == 0
    leg_center, leg_half = table_parts(center, size, yaw)[1]
    eye = [leg_center[0], -1.0, 0.3]
    at_leg = render_view(make_room(), [table], make_camera(eye, [leg_center[0], 1.0, 0.3]))
    r, c = centre_pixel(at_leg)
    assert at_leg.instance[r, c] == 9
    assert at_leg.depth[r, c] == pytest.approx(leg_center[1] - leg_half[1] + 1.0, abs=1e-4)


def make_scene(size: int = 64) -> Scene:
    cameras = tuple(
        make_camera([2.5 * np.cos(a), 2.5 * np.sin(a), 1.5], [0.0, 1.5, 0.4], size=size, fov=70.0)
        for a in np.linspace(0, 2 * np.pi, 4, endpoint=False)
    )
    return Scene("test", 0, make_room("planks"), tuple(mixed_scene_objects()), cameras)


def test_outputs_have_the_documented_types_and_are_deterministic():
    scene = make_scene()
    views = render_scene(scene)
    again = render_scene(scene)
    assert len(views) == len(scene.cameras)
    for view, other in zip(views, again, strict=True):
        assert view.rgb.shape == (64, 64, 3) and view.rgb.dtype == np.uint8
        assert view.depth.shape == (64, 64) and view.depth.dtype == np.float32
        assert view.instance.shape == (64, 64) and view.instance.dtype == np.uint16
        assert np.all(np.isfinite(view.depth)) and np.all(view.depth > 0)
        assert set(np.unique(view.instance)) <= {0, 1, 2, 3, 4, 5}
        np.testing.assert_array_equal(view.rgb, other.rgb)
        np.testing.assert_array_equal(view.depth, other.depth)
        np.testing.assert_array_equal(view.instance, other.instance)
    single = render_view(scene.room, scene.objects, scene.cameras[1])
    np.testing.assert_array_equal(single.rgb, views[1].rgb)


@pytest.mark.parametrize("pattern", ["checker", "stripes", "planks", "plain"])
def test_shading_is_plausible(pattern):
    """Not flat, not saturated: textured floor, objects in their own colour family, every pixel lit."""
    room = make_room(pattern)
    scene = make_scene()
    view = render_view(room, scene.objects, scene.cameras[0])
    rgb = view.rgb.astype(float)
    assert rgb.min() > 10 and (rgb >= 255).mean() < 0.01
    floor = view.instance == 0
    floor &= backproject(view.depth, scene.cameras[0].intrinsics, scene.cameras[0].cam_to_world)[..., 2] < 1e-3
    assert floor.sum() > 100
    spread = rgb[floor].std(axis=0).mean()
    assert spread > (5 if pattern != "plain" else 0.5)
    red = make_object(1, "box", (0.0, 1.5, 0.5), (1.0, 1.0, 1.0), yaw=0.6, color=(0.9, 0.1, 0.1))
    red_view = render_view(room, [red], scene.cameras[0])
    pixels = red_view.rgb[red_view.instance == 1].astype(float)
    assert np.all(pixels[:, 0] > pixels[:, 1] + 20) and np.all(pixels[:, 0] > pixels[:, 2] + 20)


def test_camera_outside_the_room_is_rejected():
    camera = make_camera([10.0, 0.0, 1.5], [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="inside the room"):
        render_view(make_room(), [], camera)


def test_object_straddling_the_camera_plane_is_still_rendered():
    """A box partly behind the camera cannot be bounded on screen; it must fall back to all rays."""
    camera = make_camera([0.0, 0.0, 1.0], [0.0, 2.0, 1.0])
    wide = make_object(2, "box", (0.0, 0.5, 0.3), (4.0, 3.0, 0.6))  # extends behind the camera, below eye level
    view = render_view(make_room(), [wide], camera)
    bottom = view.instance[-1]
    assert np.all(bottom == 2)
    # bottom row centre: the ray hits the box top (z = 0.6) from height 1.0
    ray = backproject(view.depth, camera.intrinsics, camera.cam_to_world)[-1, 32]
    assert ray[2] == pytest.approx(0.6, abs=1e-4)
