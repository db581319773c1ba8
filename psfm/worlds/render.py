"""Analytic, vectorized numpy ray caster for the procedural world: RGB, metric z-depth and instance masks.

Why a ray caster and not a rasterizer or a GL context: every shape in the world (boxes, cylinders, spheres,
cones, tables) has a closed-form ray intersection, so depth and masks are exact (no tessellation error), the
renderer needs nothing but numpy, and it runs in generator processes without a GPU or a display.

Speed comes from doing per-object work only where the object can be: each primitive's bounding box is projected
to a screen rectangle and only the rays inside it are intersected (numpy views, no copies), primitives are cast
front to back so ones already hidden behind nearer surfaces are skipped, and shading is deferred to one pass over
the winning pixels. Everything is float32 and single-threaded numpy; there are no Python loops over pixels.

Conventions are those of ``psfm.geometry``: OpenCV camera axes, pixel centres at +0.5, depth is z-depth.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from psfm.geometry import pixel_rays
from psfm.worlds.scene import Camera, Room, Scene, SceneObject
from psfm.worlds.shading import object_brightness, room_brightness, room_palette
from psfm.worlds.shapes import EPS_T, Arrays3, Float3, Primitive, intersect, primitive_corners, primitives_of

FALLOFF = 0.03  # brightness / (1 + FALLOFF * depth): far walls a touch darker, never black
NEAR = 1e-3  # corners closer than this to the camera plane cannot be projected: cast such objects on every ray


@dataclass(frozen=True)
class RenderedView:
    """One rendered camera view; every pixel sees a surface because the camera is inside the closed room."""

    rgb: np.ndarray  # [H, W, 3] uint8
    depth: np.ndarray  # [H, W] float32, metric z-depth (> 0)
    instance: np.ndarray  # [H, W] uint16, SceneObject.instance_id of the visible surface, 0 = room


@functools.lru_cache(maxsize=16)
def _camera_rays(intrinsics: bytes, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame ray slopes ``(x/z, y/z)``, each [H, W] float32, computed once per intrinsics and image size."""
    k = np.frombuffer(intrinsics, dtype=np.float64).reshape(3, 3)
    rays = pixel_rays(k, height, width)
    rays = rays / rays[..., 2:3]
    slopes = tuple(np.ascontiguousarray(rays[..., i], dtype=np.float32) for i in (0, 1))
    for s in slopes:
        s.flags.writeable = False  # shared between calls through the cache
    return slopes


def _room_exit(room: Room, origin: np.ndarray, d: Arrays3) -> tuple[np.ndarray, np.ndarray]:
    """Depth [H, W] where each ray leaves the room box, and the face it leaves through [H, W] uint8.

    Faces are numbered ``2 * axis + (direction >= 0)``: -x, +x, -y, +y walls, floor, ceiling, which matches the
    order of ``Room.wall_colors``. The camera is inside, so only the exit plane per axis matters.
    """
    lower, upper = room.bounds
    ts, positive = [], []
    for axis in range(3):
        pos = d[axis] >= 0
        gap = np.where(pos, np.float32(upper[axis] - origin[axis]), np.float32(origin[axis] - lower[axis]))
        ts.append(gap / np.abs(d[axis]))  # d == 0 gives +inf: that axis is never the exit
        positive.append(pos.view(np.uint8))
    tx, ty, tz = ts
    on_x = (tx <= ty) & (tx <= tz)
    on_y = ~on_x & (ty <= tz)
    face = np.where(on_x, positive[0], np.where(on_y, positive[1] + np.uint8(2), positive[2] + np.uint8(4)))
    return np.minimum(np.minimum(tx, ty), tz), face


def _screen_windows(
    prims: Sequence[Primitive], intrinsics: np.ndarray, pose: np.ndarray, height: int, width: int
) -> list[tuple[float, int, int, int, int] | None]:
    """Per primitive: ``(nearest corner z-depth, row0, row1, col0, col1)`` of its projected box, or None if unseen.

    A box straddling the camera plane cannot be bounded on screen, so it gets the whole image.
    """
    if not prims:
        return []
    corners = primitive_corners(prims)  # [P, 8, 3]
    cam = (corners - pose[:3, 3]) @ pose[:3, :3]  # [P, 8, 3], camera frame
    z = cam[..., 2]
    z_min, z_max = z.min(axis=1), z.max(axis=1)
    safe_z = np.where(z > NEAR, z, 1.0)
    uv = (cam[..., :2] / safe_z[..., None]) @ intrinsics[:2, :2].T + intrinsics[:2, 2]  # [P, 8, 2]
    lo = np.floor(uv.min(axis=1)) - 1  # [P, 2], one pixel of margin for rounding
    hi = np.ceil(uv.max(axis=1)) + 1
    windows: list[tuple[float, int, int, int, int] | None] = []
    for zn, zf, (u0, v0), (u1, v1) in zip(z_min.tolist(), z_max.tolist(), lo.tolist(), hi.tolist(), strict=True):
        if zf <= NEAR:
            windows.append(None)
        elif zn <= NEAR:
            windows.append((zn, 0, height, 0, width))
        else:
            r0, r1 = max(0, int(v0)), min(height, int(v1))
            c0, c1 = max(0, int(u0)), min(width, int(u1))
            windows.append((zn, r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None)
    return windows


def _to_local(prim: Primitive, origin: np.ndarray, d: Arrays3) -> tuple[Float3, Arrays3]:
    """Camera centre and ray directions in the primitive's frame (undo its yaw about its centre)."""
    c, s = math.cos(prim.yaw), math.sin(prim.yaw)
    rx, ry, rz = (float(origin[i]) - prim.center[i] for i in range(3))
    o_local = (c * rx + s * ry, -s * rx + c * ry, rz)
    if prim.yaw == 0.0:
        return o_local, d
    return o_local, (d[0] * c + d[1] * s, d[1] * c - d[0] * s, d[2])


def _cast(
    prims: Sequence[Primitive], camera: Camera, origin: np.ndarray, d: Arrays3, depth: np.ndarray, part: np.ndarray
) -> None:
    """Z-buffer every primitive into ``depth`` / ``part`` (in place), nearest first."""
    intrinsics = np.asarray(camera.intrinsics, dtype=np.float64)
    pose = np.asarray(camera.cam_to_world, dtype=np.float64)
    windows = _screen_windows(prims, intrinsics, pose, camera.height, camera.width)
    order = sorted((w[0], i) for i, w in enumerate(windows) if w is not None)
    for z_near, i in order:
        _, r0, r1, c0, c1 = windows[i]
        window = (slice(r0, r1), slice(c0, c1))
        depth_w = depth[window]  # [h, w] view
        if z_near >= depth_w.max():  # every visible surface here is nearer than the whole box
            continue
        prim = prims[i]
        o_local, d_local = _to_local(prim, origin, (d[0][window], d[1][window], d[2][window]))
        t = intersect(prim.kind, o_local, d_local, prim.half)  # [h, w]
        closer = t < depth_w
        closer &= t > EPS_T
        np.copyto(depth_w, t, where=closer)
        np.copyto(part[window], np.uint16(i + 1), where=closer)


def _compose(
    room: Room,
    prims: Sequence[Primitive],
    face: np.ndarray,
    part: np.ndarray,
    brightness: np.ndarray,
    mix: np.ndarray | None,
) -> np.ndarray:
    """``rgb`` [H, W, 3] uint8 from per-pixel palette colours times ``brightness`` (already scaled to 0..255).

    Works one channel at a time on [H, W] planes: gathers from a small palette and broadcasts over a trailing
    axis of 3 are several times slower in numpy than plain plane operations.
    """
    faces, floor_delta = room_palette(room)
    palette = np.concatenate([faces, np.array([p.color for p in prims], dtype=np.float32).reshape(-1, 3)])
    index = part.astype(np.intp)
    index += 5  # part i + 1 -> palette row 6 + i
    on_room = part == 0
    np.copyto(index, face, where=on_room)
    if mix is not None:
        mix *= on_room  # the floor pattern continues under objects; only floor pixels may use it
    rgb = np.empty((*part.shape, 3), dtype=np.uint8)
    for c in range(3):
        channel = np.take(np.ascontiguousarray(palette[:, c]), index, mode="clip")
        if mix is not None:
            channel += mix * floor_delta[c]
        channel *= brightness
        np.minimum(channel, 255.0, out=channel)
        channel += 0.5
        rgb[..., c] = channel  # truncating cast: rounds to nearest
    return rgb


def _render(room: Room, prims: Sequence[Primitive], camera: Camera) -> RenderedView:
    """Room exit for every ray, z-buffered primitives on top, then one batched shading pass and composition."""
    height, width = camera.height, camera.width
    intrinsics = np.asarray(camera.intrinsics, dtype=np.float64)
    pose = np.asarray(camera.cam_to_world, dtype=np.float64)
    origin = pose[:3, 3]
    lower, upper = room.bounds
    if not (np.all(origin > lower) and np.all(origin < upper)):
        raise ValueError(f"camera centre {origin.tolist()} is not inside the room {room.size}")
    sx, sy = _camera_rays(intrinsics.tobytes(), height, width)
    rot = pose[:3, :3]
    d = tuple(sx * float(rot[i, 0]) + sy * float(rot[i, 1]) + float(rot[i, 2]) for i in range(3))  # 3 x [H, W]

    with np.errstate(all="ignore"):  # misses are inf/nan by design (see shapes.py)
        depth, face = _room_exit(room, origin, d)  # [H, W] float32, [H, W] uint8
        part = np.zeros((height, width), dtype=np.uint16)  # 0 = room, i + 1 = prims[i]
        _cast(prims, camera, origin, d, depth, part)
        points = tuple(float(origin[i]) + depth * d[i] for i in range(3))  # world hit points, 3 x [H, W]
        brightness, mix = room_brightness(room, face, points)
        flat = np.flatnonzero(part)
        if flat.size:
            pid = np.take(part, flat).astype(np.intp) - 1
            light = tuple(float(v) for v in room.light_direction)
            on_objects = tuple(np.take(p, flat) for p in points)
            shaded = object_brightness(prims, pid, on_objects, light, room.ambient)  # [M]
            brightness.ravel()[flat] = shaded  # ravel of this fresh contiguous array is a view
        brightness *= np.reciprocal(1.0 + FALLOFF * depth) * 255.0
        rgb = _compose(room, prims, face, part, brightness, mix)
    ids = np.array([0] + [p.instance_id for p in prims], dtype=np.uint16)
    return RenderedView(rgb=rgb, depth=depth, instance=np.take(ids, part))


def _primitives(objects: Sequence[SceneObject]) -> list[Primitive]:
    return [p for obj in objects for p in primitives_of(obj)]


def render_view(room: Room, objects: Sequence[SceneObject], camera: Camera) -> RenderedView:
    """Render one camera: exact depth and instance ids, and a Lambert-shaded RGB image.

    Raises:
        ValueError: if the camera centre is not strictly inside the room (rays would not all hit a surface).
    """
    return _render(room, _primitives(objects), camera)


def render_scene(scene: Scene) -> list[RenderedView]:
    """Render every camera of ``scene``, in order (objects are decomposed into primitives once per scene)."""
    prims = _primitives(scene.objects)
    return [_render(scene.room, prims, camera) for camera in scene.cameras]
