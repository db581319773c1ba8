"""Ray-primitive intersection and surface normals, in a primitive's own (local) frame.

The renderer turns every ``SceneObject`` into one or more :class:`Primitive` s (a table is a top slab plus four
legs) and asks this module two questions per primitive: where does each ray first hit it
(:func:`intersect`), and what is the surface normal at a hit point (:func:`surface_normal`).

Everything works on float32 arrays of any (matching) shape, one element per ray, with the ray origin given as
three Python floats. Rays are ``o + t * d`` with ``d`` scaled so that its camera-frame z is 1, so the returned
``t`` is the z-depth directly. Misses come back as ``inf`` or ``nan``; callers must keep only
``EPS_T < t < current_depth`` (``nan`` fails every comparison, which is why we never pay to clean it up).
Divisions by zero and square roots of negative numbers are expected here: run inside
``np.errstate(all="ignore")`` (the renderer does, once per view, instead of once per call).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from psfm.worlds.scene import SceneObject

EPS_T = 1e-4  # hits closer than this (metres of z-depth) are ignored: the ray starts on that surface

Float3 = tuple[float, float, float]
Arrays3 = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Primitive:
    """One convex solid the ray caster knows, placed by ``center``, half extents ``half`` and ``yaw``.

    ``finish`` names the procedural variation the shader puts on ``color`` so faces are not flat patches.
    """

    kind: str  # box | cylinder | sphere | cone
    instance_id: int
    center: Float3
    half: Float3
    yaw: float
    color: Float3
    finish: str  # edges | stripes | bands | grain | leg


def table_parts(center: Float3, size: Float3, yaw: float) -> list[tuple[Float3, Float3]]:
    """``(center, half)`` of a table's top slab and four legs, all inside its bounding box.

    Thickness and leg side are clipped to furniture-like ranges so small and large tables both read as tables.
    """
    w, d, h = size
    top = min(max(0.05 * h, 0.02), 0.05, 0.5 * h)
    side = min(max(0.05 * min(w, d), 0.03), 0.06, min(w, d) / 3)
    inset = 0.25 * side
    c, s = math.cos(yaw), math.sin(yaw)

    def place(lx: float, ly: float, lz: float) -> Float3:
        return (center[0] + c * lx - s * ly, center[1] + s * lx + c * ly, center[2] + lz)

    leg_h = h - top
    parts = [(place(0.0, 0.0, h / 2 - top / 2), (w / 2, d / 2, top / 2))]
    for sx in (-1.0, 1.0):
        for sy in (-1.0, 1.0):
            lx, ly = sx * (w / 2 - inset - side / 2), sy * (d / 2 - inset - side / 2)
            parts.append((place(lx, ly, -h / 2 + leg_h / 2), (side / 2, side / 2, leg_h / 2)))
    return parts


def primitives_of(obj: SceneObject) -> list[Primitive]:
    """The convex pieces that make up ``obj`` (tables decompose; every other shape is a single piece)."""
    box = obj.box
    center = tuple(float(v) for v in box.center)
    half = tuple(float(v) / 2 for v in box.size)
    color = tuple(float(v) for v in obj.color_rgb)
    yaw = float(box.yaw)
    if obj.shape == "table":
        parts = table_parts(center, tuple(float(v) for v in box.size), yaw)
        return [
            Primitive("box", obj.instance_id, c, h, yaw, color, "grain" if i == 0 else "leg")
            for i, (c, h) in enumerate(parts)
        ]
    finish = {"box": "edges", "cylinder": "stripes", "cone": "stripes", "sphere": "bands"}.get(obj.shape)
    if finish is None:
        raise ValueError(f"unknown shape {obj.shape!r} for object {obj.instance_id}")
    return [Primitive(obj.shape, obj.instance_id, center, half, yaw, color, finish)]


def _first_positive(t_near: np.ndarray, t_far: np.ndarray) -> np.ndarray:
    """Entry distance, or the exit distance when the ray starts inside the solid."""
    return np.where(t_near > EPS_T, t_near, t_far)


def _slab(o: float, d: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Interval of ``t`` where ``|o + t d| <= h``; origins exactly on a plane are nudged to avoid 0 * inf."""
    if abs(abs(o) - h) < 1e-7:
        o += 2e-7 if o > 0 else -2e-7
    inv = np.reciprocal(d)
    ta = inv * (-h - o)
    tb = inv * (h - o)
    return np.minimum(ta, tb), np.maximum(ta, tb)


def hit_box(o: Float3, d: Arrays3, half: Float3) -> np.ndarray:
    """Slab test against the box ``|x| <= half``."""
    lo, hi = _slab(o[0], d[0], half[0])
    for axis in (1, 2):
        lo_a, hi_a = _slab(o[axis], d[axis], half[axis])
        np.maximum(lo, lo_a, out=lo)
        np.minimum(hi, hi_a, out=hi)
    return np.where(lo <= hi, _first_positive(lo, hi), np.inf)


def _quadratic(a: np.ndarray, b: np.ndarray, c: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted roots of ``a t^2 + 2 b t + c``; the cancellation-free form keeps float32 entry points exact.

    No real roots gives ``nan`` (sqrt of a negative), which every later comparison rejects.
    """
    q = np.sqrt(b * b - a * c)
    np.copysign(q, b, out=q)
    q += b
    np.negative(q, out=q)
    r1 = q / a
    r2 = np.divide(c, q)
    return np.minimum(r1, r2), np.maximum(r1, r2)


def hit_ellipsoid(o: Float3, d: Arrays3, half: Float3) -> np.ndarray:
    """Ellipsoid inscribed in the box: ``sum (x_i / half_i)^2 <= 1``."""
    k = [1.0 / (h * h) for h in half]
    a = d[0] * d[0] * k[0] + d[1] * d[1] * k[1] + d[2] * d[2] * k[2]
    b = d[0] * (o[0] * k[0]) + d[1] * (o[1] * k[1]) + d[2] * (o[2] * k[2])
    c = o[0] * o[0] * k[0] + o[1] * o[1] * k[1] + o[2] * o[2] * k[2] - 1.0
    t0, t1 = _quadratic(a, b, c)
    return _first_positive(t0, t1)


def hit_cylinder(o: Float3, d: Arrays3, half: Float3) -> np.ndarray:
    """Vertical elliptic cylinder with flat caps, inscribed in the box."""
    kx, ky = 1.0 / (half[0] * half[0]), 1.0 / (half[1] * half[1])
    a = d[0] * d[0] * kx + d[1] * d[1] * ky
    np.maximum(a, 1e-30, out=a)  # vertical rays: the side interval becomes (-huge, huge) or empty
    b = d[0] * (o[0] * kx) + d[1] * (o[1] * ky)
    c = o[0] * o[0] * kx + o[1] * o[1] * ky - 1.0
    lo, hi = _quadratic(a, b, c)
    z_lo, z_hi = _slab(o[2], d[2], half[2])
    np.maximum(lo, z_lo, out=lo)
    np.minimum(hi, z_hi, out=hi)
    return np.where(lo <= hi, _first_positive(lo, hi), np.inf)


def hit_cone(o: Float3, d: Arrays3, half: Float3) -> np.ndarray:
    """Vertical cone, base ellipse at ``z = -half_z``, apex at ``z = +half_z``; the base is capped.

    The side is ``(x/rx)^2 + (y/ry)^2 = w^2`` with ``w = (hz - z) / (2 hz)``; a root only counts where
    ``0 <= w <= 1`` (between base and apex), since the quadratic also describes the mirrored upper nappe.
    """
    rx, ry, hz = half
    kx, ky = 1.0 / (rx * rx), 1.0 / (ry * ry)
    w0, wd = (hz - o[2]) / (2 * hz), -1.0 / (2 * hz)  # w(t) = w0 + t * wd * dz
    a = d[0] * d[0] * kx + d[1] * d[1] * ky - d[2] * d[2] * (wd * wd)
    b = d[0] * (o[0] * kx) + d[1] * (o[1] * ky) - d[2] * (w0 * wd)
    c = o[0] * o[0] * kx + o[1] * o[1] * ky - w0 * w0
    best = np.full(a.shape, np.inf, dtype=np.float32)
    for root in _quadratic(a, b, c):
        w = root * d[2]
        w *= wd
        w += w0
        ok = (w >= 0.0) & (w <= 1.0) & (root > EPS_T) & (root < best)
        np.copyto(best, root, where=ok)
    t_cap = np.divide(-hz - o[2], d[2])
    x = o[0] + t_cap * d[0]
    y = o[1] + t_cap * d[1]
    ok = (x * x * kx + y * y * ky <= 1.0) & (t_cap > EPS_T) & (t_cap < best)
    np.copyto(best, t_cap, where=ok)
    return best


_HITS = {"box": hit_box, "sphere": hit_ellipsoid, "cylinder": hit_cylinder, "cone": hit_cone}


def intersect(kind: str, o: Float3, d: Arrays3, half: Float3) -> np.ndarray:
    """First hit ``t`` along each ray (local frame); ``inf``/``nan`` or ``<= EPS_T`` where the ray misses."""
    return _HITS[kind](o, d, half)


def _normalized(nx: np.ndarray, ny: np.ndarray, nz: np.ndarray) -> Arrays3:
    inv = np.reciprocal(np.sqrt(nx * nx + ny * ny + nz * nz))
    return nx * inv, ny * inv, nz * inv


def _sign(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, np.float32(1.0), np.float32(-1.0))


def surface_normal(kind: str, p: Arrays3, half: Float3) -> Arrays3:
    """Outward unit normal at local hit points ``p`` (each ``[...]``) on the surface of a ``kind`` primitive.

    The face / cap / side is recovered from the point itself (whichever constraint is tightest), so the
    intersection pass never has to carry a per-pixel part label.
    """
    x, y, z = p
    zero = np.zeros_like(x)
    if kind == "box":
        qx, qy, qz = np.abs(x) / half[0], np.abs(y) / half[1], np.abs(z) / half[2]
        on_x = (qx >= qy) & (qx >= qz)
        on_y = ~on_x & (qy >= qz)
        on_z = ~(on_x | on_y)
        return np.where(on_x, _sign(x), zero), np.where(on_y, _sign(y), zero), np.where(on_z, _sign(z), zero)
    if kind == "sphere":
        return _normalized(x / (half[0] * half[0]), y / (half[1] * half[1]), z / (half[2] * half[2]))
    kx, ky = 1.0 / (half[0] * half[0]), 1.0 / (half[1] * half[1])
    radial = np.sqrt(x * x * kx + y * y * ky)  # 1 on a cylinder's side, w on a cone's side
    if kind == "cylinder":
        cap = np.abs(z) / half[2] > radial
        nx, ny = np.where(cap, zero, x * kx), np.where(cap, zero, y * ky)
        return _normalized(nx, ny, np.where(cap, _sign(z), zero))
    if kind == "cone":
        hz = half[2]
        cap = z < -hz + 1e-3 * hz  # base cap; the side's z never gets this close to the base except at the rim
        # gradient of (x/rx)^2 + (y/ry)^2 - w^2 with w = (hz - z) / (2 hz)
        nz = (hz - z) * (1.0 / (4 * hz * hz))
        return _normalized(
            np.where(cap, zero, x * kx), np.where(cap, zero, y * ky), np.where(cap, np.float32(-1.0), nz)
        )
    raise ValueError(f"unknown primitive kind {kind!r}")


def primitive_corners(prims: Sequence[Primitive]) -> np.ndarray:
    """World corners ``[P, 8, 3]`` of every primitive's bounding box (for screen-space culling)."""
    centers = np.array([p.center for p in prims], dtype=np.float64)  # [P, 3]
    halves = np.array([p.half for p in prims], dtype=np.float64)  # [P, 3]
    yaws = np.array([p.yaw for p in prims], dtype=np.float64)  # [P]
    signs = np.array([[sx, sy, sz] for sz in (-1, 1) for sy in (-1, 1) for sx in (-1, 1)], dtype=np.float64)
    local = signs[None] * halves[:, None, :]  # [P, 8, 3]
    c, s = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
    world = np.empty_like(local)
    world[..., 0] = c * local[..., 0] - s * local[..., 1]
    world[..., 1] = s * local[..., 0] + c * local[..., 1]
    world[..., 2] = local[..., 2]
    return world + centers[:, None, :]
