"""Deterministic shading for the ray caster: room textures (floor patterns, walls), object finishes, lighting.

No randomness happens here: everything that varies between scenes lives in the ``Room`` / ``SceneObject``
fields, so a scene renders to the same pixels on every machine. Shading is a Lambertian term for
``room.light_direction`` plus a hemispherical ambient (surfaces facing up get a little more, the ceiling a little
less) and, in the renderer, a mild distance falloff: enough for depth cues without paying for shadows.

The renderer composes ``rgb = albedo * brightness``; this module supplies the brightness (lighting times a
procedural finish, so faces are not perfectly flat patches) and the floor's two-colour mix weight. All arrays are
float32, one element per pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from psfm.worlds.scene import Room
from psfm.worlds.shapes import Arrays3, Float3, Primitive, surface_normal

BASEBOARD = 0.08  # metres of darker band at the bottom of each wall

# Normals of the room faces as seen from inside, in the order of the renderer's face index:
# -x wall, +x wall, -y wall, +y wall, floor, ceiling.
ROOM_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)

# (kind, finish) pairs shaded together in one vectorized batch; see ``object_brightness``.
_GROUPS = (("box", "edges"), ("box", "grain"), ("box", "leg"), ("cylinder", "stripes"), ("cone", "stripes"))
_GROUPS += (("sphere", "bands"),)


def lighting(n_dot_l: np.ndarray, n_z: np.ndarray, ambient: float) -> np.ndarray:
    """Ambient (hemispherical) plus diffuse: ``amb * (0.85 + 0.15 n_z) + (1 - amb) * max(n.l, 0)``."""
    return ambient * (0.85 + 0.15 * n_z) + (1.0 - ambient) * np.maximum(n_dot_l, 0.0)


def _hash01(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """A pseudo-random value in [0, 1) per integer cell ``(i, j)``; integer maths, so identical on every machine."""
    h = (i.astype(np.int32) * np.int32(73856093)) ^ (j.astype(np.int32) * np.int32(19349663))
    return ((h >> 12) & 255).astype(np.float32) * np.float32(1.0 / 256)  # high bits: the low ones are weak


def floor_mix(room: Room, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | float]:
    """Floor pattern at world ``(x, y)``: mix weight towards ``floor_colors[1]`` (None: plain) and a brightness.

    ``room.floor_scale`` is one full period: checker cells and stripes are half of it wide; planks are half of it
    wide and two periods long, staggered row by row, each with its own shade between the two colours and thin
    dark seams.
    """
    cell = 2.0 / float(room.floor_scale)
    if room.floor_pattern == "checker":
        parity = np.floor(x * cell)
        parity += np.floor(y * cell)
        return parity - 2.0 * np.floor(parity * 0.5), 1.0
    if room.floor_pattern == "stripes":
        u = np.floor(x * cell)
        return u - 2.0 * np.floor(u * 0.5), 1.0
    if room.floor_pattern == "planks":
        row_f = y * cell
        row = np.floor(row_f)
        along = x * (0.25 * cell) + 0.37 * row  # stagger the joints between rows
        col = np.floor(along)
        seam = (row_f - row < 0.04) | (along - col < 0.01)
        return _hash01(row, col), 1.0 - np.float32(0.3) * seam
    if room.floor_pattern == "plain":
        return None, 1.0
    raise ValueError(f"unknown floor pattern {room.floor_pattern!r}")


def room_palette(room: Room) -> tuple[np.ndarray, np.ndarray]:
    """Albedo ``[6, 3]`` of each room face (the floor's first colour) and the floor's second-minus-first ``[3]``."""
    faces = np.array(list(room.wall_colors[:4]) + [room.floor_colors[0], room.ceiling_color], dtype=np.float32)
    return faces, np.asarray(room.floor_colors[1], dtype=np.float32) - faces[4]


def room_brightness(room: Room, face: np.ndarray, points: Arrays3) -> tuple[np.ndarray, np.ndarray | None]:
    """Brightness [H, W] of the room surface at world ``points`` on ``face`` (0..5), and the floor mix [H, W].

    The room faces are planes, so their lighting is one number per face. Walls get a darker baseboard band and a
    faint vertical gradient so wall-floor and wall-wall edges stay visible even when two walls share a colour.
    The mix is 0 off the floor (None when the floor is plain).
    """
    x, y, z = points
    light = np.asarray(room.light_direction, dtype=np.float64)
    face_light = lighting(ROOM_NORMALS @ light, ROOM_NORMALS[:, 2], room.ambient).astype(np.float32)  # [6]
    on_floor = face == 4
    mix, floor_bright = floor_mix(room, x, y)
    bright = z * (0.07 / float(room.size[2]))  # ceiling: exactly 1 below
    bright += 0.93
    bright -= (z < BASEBOARD) * np.float32(0.21)
    np.copyto(bright, floor_bright, where=on_floor)
    bright *= np.take(face_light, face)
    if mix is not None:
        mix *= on_floor
    return bright, mix


def finish_factor(finish: str, p: Arrays3, half: Arrays3 | Float3, n_z: np.ndarray) -> np.ndarray:
    """Brightness variation at local points ``p`` with normal z ``n_z`` (``half``: per-point or scalar extents).

    Boxes darken towards their edges, cylinders and cones get faint vertical stripes on their sides (not their
    caps), spheres faint latitude bands, table tops a wood-like grain, table legs are a shade darker.
    """
    x, y, z = p
    if finish in ("edges", "leg"):
        qx, qy, qz = np.abs(x) / half[0], np.abs(y) / half[1], np.abs(z) / half[2]
        middle = qx + qy + qz - np.maximum(np.maximum(qx, qy), qz) - np.minimum(np.minimum(qx, qy), qz)
        edge = np.clip((middle - 0.82) * (1.0 / 0.18), 0.0, 1.0)
        return (0.88 if finish == "leg" else 1.0) - 0.2 * edge * edge
    if finish == "stripes":
        side = 0.05 - 0.05 * np.abs(n_z)
        return 0.95 + side * np.cos(np.arctan2(y / half[1], x / half[0]) * 8.0)
    if finish == "bands":
        return 0.95 + 0.05 * np.cos(z / half[2] * (3.0 * np.pi))
    if finish == "grain":
        return 0.93 + 0.07 * np.cos(y * (2.0 * np.pi / 0.06) + 2.0 * np.sin(x * (2.0 * np.pi / 0.5)))
    raise ValueError(f"unknown finish {finish!r}")


def object_brightness(
    prims: Sequence[Primitive], pid: np.ndarray, points: Arrays3, light: Float3, ambient: float
) -> np.ndarray:
    """Brightness [M] of object pixels: world hit ``points`` (3 x [M]) on primitives ``prims[pid]`` ([M] ints).

    Why batched: per-primitive shading costs a fixed numpy overhead per operation per primitive, which dominates
    at 128x128. Sorting the pixels by (shape, finish) makes each group a contiguous slice, so the whole view is
    shaded in a handful of vector passes however many objects there are.
    """
    codes = np.array([_GROUPS.index((p.kind, p.finish)) for p in prims], dtype=np.uint8)
    table = np.array(
        [(*p.center, np.cos(p.yaw), np.sin(p.yaw), *p.half) for p in prims], dtype=np.float32
    )  # [P, 8]: centre, cos/sin of yaw, half extents
    code = np.take(codes, pid)
    order = np.argsort(code, kind="stable")
    bounds = np.searchsorted(code[order], np.arange(len(_GROUPS) + 1)).tolist()
    params = table[pid[order]]  # [M, 8], pixels grouped by code
    cx, cy, cz, cos, sin, hx, hy, hz = params.T
    wx, wy, wz = (np.take(p, order) for p in points)
    wx -= cx
    wy -= cy
    local = (cos * wx + sin * wy, cos * wy - sin * wx, wz - cz)  # hit points in each primitive's frame
    light_local = (cos * light[0] + sin * light[1], cos * light[1] - sin * light[0])
    brightness = np.empty_like(wx)
    for g, (kind, finish) in enumerate(_GROUPS):
        a, b = bounds[g], bounds[g + 1]
        if a == b:
            continue
        p = tuple(c[a:b] for c in local)
        half = (hx[a:b], hy[a:b], hz[a:b])
        n = surface_normal(kind, p, half)
        n_dot_l = n[0] * light_local[0][a:b] + n[1] * light_local[1][a:b] + n[2] * light[2]
        brightness[a:b] = lighting(n_dot_l, n[2], ambient) * finish_factor(finish, p, half, n[2])
    out = np.empty_like(brightness)
    out[order] = brightness
    return out
