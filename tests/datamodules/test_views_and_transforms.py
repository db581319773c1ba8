"""View sampling rules and intrinsics-consistent fitting."""

from __future__ import annotations

import random
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from psfm.datamodules.covisibility import SceneCameras, overlap_scores
from psfm.datamodules.datamodule import DataModuleConfig, SceneDataModule
from psfm.datamodules.transforms import fit_view
from psfm.datamodules.views import ViewSampling
from psfm.geometry import intrinsics_from_fov, look_at, project
from tests.conftest import make_batch


def test_random_selection_is_distinct_and_in_range():
    sampling, rng = ViewSampling(3, 6), random.Random(0)
    for _ in range(200):
        count = sampling.num_views(rng, 5)
        assert 3 <= count <= 5
        chosen = sampling.select(rng, 10, count)
        assert len(set(chosen)) == count and all(0 <= i < 10 for i in chosen)
    assert sampling.num_context(6) == 3 and sampling.num_context(1) == 1


def test_window_is_sorted_frames_with_gaps_in_range_and_the_first_frame_as_reference():
    sampling, rng = ViewSampling(4, 4, strategy="window", min_gap=2, max_gap=6), random.Random(1)
    gaps = set()
    for _ in range(300):
        chosen = sampling.select(rng, 100, 4)
        frames = sorted(chosen)
        assert chosen[0] == frames[0], "the window's first frame is the reference (view 0, context)"
        steps = np.diff(frames)
        assert all(2 <= step <= 6 for step in steps)
        gaps.update(steps.tolist())
    assert gaps == {2, 3, 4, 5, 6}  # each gap drawn on its own, every value reached


def test_window_shrinks_its_gaps_to_fit_and_falls_back_on_short_captures():
    sampling, rng = ViewSampling(4, 4, strategy="window", min_gap=2, max_gap=6), random.Random(2)
    for _ in range(100):
        frames = sorted(sampling.select(rng, 10, 4))  # 3 gaps of at most (10 - 1) // 3 = 3
        assert all(2 <= step <= 3 for step in np.diff(frames)) and frames[-1] < 10
        short = sampling.select(rng, 5, 4)  # 3 gaps of 2 need 7 frames: any 4 distinct, earliest first
        assert len(set(short)) == 4 and max(short) < 5 and short[0] == min(short)
    assert sampling.select(rng, 5, 1)[0] in range(5)


@pytest.mark.parametrize(("min_gap", "max_gap"), [(1, 1), (1, 3), (2, 2), (2, 6), (3, 4)])
def test_window_draws_valid_views_from_every_small_capture(min_gap, max_gap):
    """Every capture length from 1 frame up and every V it allows, so the boundary cases are all hit.

    A capture of exactly (V - 1) * min_gap + 1 frames is the shortest that fits a window (every gap min_gap);
    one frame fewer must fall back to random frames. A bound off by one either way crashes or leaves the capture.
    """
    sampling, rng = ViewSampling(1, 12, strategy="window", min_gap=min_gap, max_gap=max_gap), random.Random(0)
    for available in range(1, 26):
        for count in range(1, available + 1):
            fits = (count - 1) * min_gap + 1 <= available
            widest = min(max_gap, (available - 1) // (count - 1)) if count > 1 and fits else None
            for _ in range(8):
                chosen = sampling.select(rng, available, count)
                frames = sorted(chosen)
                assert len(set(chosen)) == count and 0 <= frames[0] <= frames[-1] < available, (available, chosen)
                assert chosen[0] == frames[0], "the earliest frame is the reference"
                if widest is not None:
                    assert all(min_gap <= gap <= widest for gap in np.diff(frames)), (available, chosen)
            if (count - 1) * min_gap + 1 == available and count > 1:  # exactly fits: the whole capture, gap min_gap
                assert frames == list(range(0, available, min_gap))


@pytest.mark.parametrize("available", [5, 6, 9, 20, 57])
def test_window_context_views_are_drawn_anew_each_time(available):
    """``select`` lists the reference, then the other frames in random order, so context = a prefix is random.

    Compared unsorted: without that shuffle the context would always be the window's earliest frames. Captures of
    several lengths, the short one (5 frames for 4 views with min_gap 2) on the fallback path.
    """
    sampling, rng = ViewSampling(4, 4, strategy="window", min_gap=2, max_gap=3), random.Random(0)
    patterns = set()
    for _ in range(400):
        chosen = sampling.select(rng, available, 4)
        rest = chosen[1:]
        patterns.add(tuple(sorted(range(3), key=rest.__getitem__)))  # the capture-order rank of each listed frame
    assert len(patterns) == 6  # all 3! orders of the non-reference frames occur


def test_window_batches_hold_views_in_capture_order_with_context_anywhere():
    sampling = ViewSampling(6, 6, strategy="window", min_gap=1, max_gap=3)
    selected = [10, 17, 12, 15, 11, 13]  # select's order: reference, two more context views, three targets
    order, context, targets = sampling.arrange(selected, num_context=3)

    assert [selected[i] for i in order] == [10, 11, 12, 13, 15, 17]
    assert context == [0, 2, 5] and targets == [1, 3, 4]  # positions of 10, 12, 17 and of 11, 13, 15
    assert ViewSampling(strategy="random").arrange(selected, 3) == (list(range(6)), [0, 1, 2], [3, 4, 5])


@pytest.mark.parametrize(
    "bad",
    [
        dict(min_views=0),
        dict(min_views=5, max_views=4),
        dict(context_ratio=0.0),
        dict(strategy="x"),
        dict(min_gap=0),
        dict(min_gap=3, max_gap=2),
        dict(target_overlap=1.5),
        dict(overlap_depth=0.0),
        dict(target_overlap_from="reference"),
    ],
)
def test_invalid_sampling_is_refused(bad):
    with pytest.raises(ValueError, match="views:"):
        ViewSampling(**bad)


@pytest.mark.parametrize("crop", ["center", "random"])
def test_fitting_keeps_projection_consistent(crop):
    """A 3D point lands on the same image content before and after resize + crop."""
    height, width = 60, 90
    intrinsics = intrinsics_from_fov(width, height, 70.0)
    pose = look_at(np.array([0.0, 0.0, 1.0]), np.array([3.0, 0.0, 1.0]))
    point = np.array([[3.0, 0.4, 1.2]])
    u, v = project(point, intrinsics, pose)[0][0]
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[int(v) - 2 : int(v) + 3, int(u) - 2 : int(u) + 3] = 255  # a bright square around the point
    depth = np.full((height, width), 2.0, np.float32)
    fitted, new_intrinsics, new_depth, _ = fit_view(rgb, intrinsics, (32, 32), crop, random.Random(3), depth=depth)
    u2, v2 = project(point, new_intrinsics, pose)[0][0]
    assert fitted.shape == (32, 32, 3) and new_depth.shape == (32, 32) and np.all(new_depth == 2.0)
    assert fitted[int(v2), int(u2)].min() > 128  # the point still sits on its bright square
    ys, xs = np.nonzero(fitted[..., 0] > 128)
    assert abs(xs.mean() + 0.5 - u2) < 0.75 and abs(ys.mean() + 0.5 - v2) < 0.75


sizes = st.integers(6, 80)


def test_overlap_hidden_from_counts_only_what_those_views_cannot_see():
    """Reference 0 looks along +x, view 1 along -x: a candidate beside view 1 is what only view 1 shows."""
    cameras = facing_cameras([(1, 0), (-1, 0), (-1, 0), (1, 0)])
    both = overlap_scores(cameras, [2, 3], context=[0, 1], depth=2.0)
    assert both[0] > 0.9 and both[1] > 0.9
    others = overlap_scores(cameras, [2, 3], context=[1], depth=2.0, hidden_from=[0])
    assert others[0] == pytest.approx(both[0]) and others[1] == 0.0  # candidate 3 is the reference's own view


def test_targets_from_the_others_are_what_only_the_non_reference_context_views_show():
    """Eight cameras, 0-3 along +x, 4-7 along -x. Where the two context views face apart, every target faces
    the way the non-reference one does; scored against any context view, some face the reference's way."""
    cameras = facing_cameras([(1, 0)] * 4 + [(-1, 0)] * 4)

    def targets_with_the_other_view(source: str) -> list[bool]:
        views = ViewSampling(4, 4, context_ratio=0.5, target_overlap=0.5, target_overlap_from=source)
        out = []
        for seed in range(60):
            chosen = views.select(random.Random(seed), 8, 4, cameras)
            reference, other, targets = chosen[0], chosen[1], chosen[2:]
            if (reference < 4) != (other < 4):
                out += [(target < 4) == (other < 4) for target in targets]
        return out

    fused = targets_with_the_other_view("others")
    assert len(fused) >= 40 and all(fused)
    assert not all(targets_with_the_other_view("context"))  # the test can fail
    single = ViewSampling(2, 2, context_ratio=0.5, target_overlap=0.5, target_overlap_from="others")
    reference, target = single.select(random.Random(0), 8, 2, cameras)  # one context view: scored as "context"
    assert (reference < 4) == (target < 4)


@settings(max_examples=40, deadline=None)
@given(
    source=st.tuples(sizes, sizes),
    out=st.tuples(st.integers(4, 48), st.integers(4, 48)),
    focal=st.tuples(st.floats(0.5, 2.0), st.floats(0.5, 2.0)),
    principal=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    crop=st.sampled_from(["center", "random"]),
    seed=st.integers(0, 2**16),
)
@example(source=(60, 20), out=(16, 16), focal=(1.0, 1.0), principal=(0.5, 0.5), crop="center", seed=0)  # crops rows
@example(source=(20, 60), out=(16, 16), focal=(1.0, 1.0), principal=(0.5, 0.5), crop="center", seed=0)  # crops columns
@example(source=(30, 40), out=(40, 12), focal=(1.2, 0.8), principal=(0.3, 0.7), crop="random", seed=5)  # to portrait
def test_fitted_intrinsics_send_every_output_pixel_back_to_the_source_pixel_it_shows(
    source, out, focal, principal, crop, seed
):
    """Any sizes, portrait or landscape, any crop: the updated K' still describes the pixels fit_view returns.

    Depth is resampled nearest-neighbour, so a depth map holding each source pixel's own index tells, for
    every output pixel, which source pixel it shows. The ray through that output pixel's centre under K'
    must, under the original K, hit that very source pixel. Square outputs from landscape sources (the
    only case before) never crop rows, so a ``cy`` left unshifted by the vertical crop went unnoticed.
    """
    (height, width), (out_h, out_w) = source, out
    intrinsics = np.array(
        [[focal[0] * width, 0.0, principal[0] * width], [0.0, focal[1] * height, principal[1] * height], [0, 0, 1]]
    )
    code = np.arange(height * width, dtype=np.float32).reshape(height, width)  # exact in float32 (< 2**24)
    rgb = np.zeros((height, width, 3), np.uint8)

    fitted, new_intrinsics, shown, mask = fit_view(
        rgb, intrinsics, (out_h, out_w), crop, random.Random(seed), depth=code, mask=code.astype(np.int64)
    )

    assert fitted.shape == (out_h, out_w, 3) and shown.shape == (out_h, out_w)
    np.testing.assert_array_equal(mask, shown)  # masks follow the same pixels as depth
    assert mask.dtype == np.int64  # instance ids stay integers (mutation testing: a float mask survived)
    rows, cols = np.mgrid[:out_h, :out_w]
    centres = np.stack([cols + 0.5, rows + 0.5, np.ones_like(cols)], axis=-1).reshape(-1, 3)
    back = centres @ np.linalg.inv(new_intrinsics).T @ intrinsics.T  # source pixel coordinates, z = 1
    source_rows, source_cols = np.divmod(shown.reshape(-1).astype(np.int64), width)
    slack = 1e-6 * max(height, width)  # nearest-neighbour ties at exact pixel borders
    assert np.all(back[:, 0] >= source_cols - slack) and np.all(back[:, 0] <= source_cols + 1 + slack)
    assert np.all(back[:, 1] >= source_rows - slack) and np.all(back[:, 1] <= source_rows + 1 + slack)


@pytest.mark.parametrize("training", [True, False])
def test_colour_jitter_reaches_the_encoder_images_and_keeps_the_clean_ones_for_teachers(training):
    datamodule = SceneDataModule(DataModuleConfig(augment=True))
    datamodule.trainer = SimpleNamespace(training=training)
    batch = make_batch(batch_size=2, num_views=4)
    original = batch.images.clone()
    torch.manual_seed(0)

    out = datamodule.on_after_batch_transfer(replace(batch), 0)

    if not training:  # validation sees clean images and nothing else
        assert out.clean_images is None and torch.equal(out.images, original)
        return
    assert torch.equal(out.clean_images, original) and torch.equal(out.teacher_images, original)
    assert not torch.allclose(out.images, original, atol=1e-3)
    assert out.images.shape == original.shape and out.images.min() >= 0 and out.images.max() <= 1


def facing_cameras(directions: list[tuple[float, float]], spacing: float = 0.1) -> SceneCameras:
    """Cameras 1 m up along the x axis (``spacing`` apart), each looking along its (dx, dy) direction."""
    poses = []
    for index, (dx, dy) in enumerate(directions):
        eye = np.array([spacing * index, 0.0, 1.0])
        poses.append(look_at(eye, eye + np.array([dx, dy, 0.0])))
    intrinsics = np.stack([intrinsics_from_fov(64, 48, 60.0)] * len(directions))
    return SceneCameras(intrinsics, np.stack(poses), (48, 64))


def test_overlap_scores_follow_the_frustums():
    cameras = facing_cameras([(1, 0), (1, 0), (-1, 0), (0, 1), (1, 1)])

    scores = overlap_scores(cameras, [1, 2, 3, 4], context=[0], depth=2.0)

    assert scores[0] > 0.9  # beside the context camera, looking the same way
    assert scores[1] == 0.0 and scores[2] == 0.0  # facing away; turned 90 degrees with a 60-degree field of view
    assert 0.0 < scores[3] < scores[0]  # turned 45 degrees: partly seen
    sideways = SceneCameras(cameras.intrinsics[:2], cameras.cam_to_world[:2].copy(), (48, 64))
    sideways.cam_to_world[1, :3, 3] += sideways.cam_to_world[1, :3, 0] * 2.0  # 2 m to its right
    near, far = (overlap_scores(sideways, [1], [0], depth)[0] for depth in (0.5, 20.0))
    assert near == 0.0 and far > 0.8  # the cut depth matters: far away the two frustums meet


@settings(max_examples=40, deadline=None)
@given(
    size=st.tuples(st.integers(8, 200), st.integers(8, 200)),
    fov=st.floats(30.0, 120.0),
    principal=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    shift=st.tuples(st.integers(0, 7), st.integers(0, 7)),
    depth=st.floats(0.1, 50.0),
)
@example(size=(48, 160), fov=60.0, principal=(0.5, 0.5), shift=(0, 0), depth=2.0)
@example(size=(160, 48), fov=60.0, principal=(0.5, 0.5), shift=(4, 0), depth=2.0)
@example(size=(48, 160), fov=60.0, principal=(0.5, 0.5), shift=(0, 4), depth=2.0)
def test_overlap_of_a_shifted_copy_of_the_context_view_is_its_shared_area(size, fov, principal, shift, depth):
    """A candidate at the context camera's pose whose principal point moved by (i / 8 of W, j / 8 of H) shows the
    context image shifted by that much: the context sees exactly (1 - i / 8)(1 - j / 8) of its 8 x 8 patch centres.

    Any image shape: patch centres laid over (H, W) instead of (W, H), or u bounded by H, change the fraction.
    """
    height, width = size
    intrinsics = intrinsics_from_fov(width, height, fov)
    intrinsics[:2, 2] = principal[0] * width, principal[1] * height
    shifted = intrinsics.copy()
    # the shifted camera's pixel (u, v) is the context's (u - i W / 8, v - j H / 8)
    shifted[:2, 2] += shift[0] * width / 8, shift[1] * height / 8
    pose = look_at(np.array([0.3, -0.2, 1.0]), np.array([2.0, 1.0, 0.5]), roll_deg=15.0)
    cameras = SceneCameras(np.stack([intrinsics, shifted]), np.stack([pose] * 2), (height, width))

    score = overlap_scores(cameras, [1], [0], depth, grid=8)[0]

    assert score == pytest.approx((1 - shift[0] / 8) * (1 - shift[1] / 8), abs=1e-12)


def test_a_ray_landing_on_the_right_or_bottom_edge_of_the_context_image_is_outside_it():
    """Pixels span [0, W) x [0, H): a patch centre projecting exactly onto u = W or v = H is not seen.

    A principal point moved by half a patch puts the candidate's last column and row of patch centres
    exactly on the context image's right and bottom edges (exact in floating point: focal 32, identity
    poses), so 7 x 7 of its 8 x 8 centres are seen (mutation testing: ``v <= H`` survived).
    """
    height, width = 48, 64
    intrinsics = np.array([[32.0, 0.0, width / 2], [0.0, 32.0, height / 2], [0.0, 0.0, 1.0]])
    shifted = intrinsics.copy()
    shifted[:2, 2] -= width / 16, height / 16  # the candidate's (u, v) is the context's (u + W/16, v + H/16)
    cameras = SceneCameras(np.stack([intrinsics, shifted]), np.stack([np.eye(4)] * 2), (height, width))

    assert overlap_scores(cameras, [1], [0], depth=2.0, grid=8)[0] == 49 / 64


def test_targets_facing_away_from_the_context_are_never_chosen_when_overlapping_ones_exist():
    cameras = facing_cameras([(1, 0)] * 6 + [(-1, 0)] * 6)  # two groups looking in opposite directions
    group = [0] * 6 + [1] * 6
    covisible = ViewSampling(4, 4, context_ratio=0.25, target_overlap=0.5)  # one context view, three targets
    rng = random.Random(0)
    for _ in range(200):
        chosen = covisible.select(rng, 12, 4, cameras)
        assert len(set(chosen)) == 4
        assert all(group[target] == group[chosen[0]] for target in chosen[1:])
    plain, rng = ViewSampling(4, 4, context_ratio=0.25), random.Random(0)
    mixed = [plain.select(rng, 12, 4) for _ in range(50)]
    assert any(group[target] != group[chosen[0]] for chosen in mixed for target in chosen[1:])  # the test can fail


def test_too_few_overlapping_targets_are_topped_up_by_the_best_of_the_rest():
    cameras = facing_cameras([(1, 0), (1, 0), (1, 1), (-1, 0), (-1, 0)])
    sampling = ViewSampling(4, 4, context_ratio=0.25, target_overlap=0.9)
    checked = 0
    for seed in range(20):
        chosen = sampling.select(random.Random(seed), 5, 4, cameras)
        if chosen[0] in (0, 1):  # the other of 0, 1 overlaps; then the 45-degree view; then (a tie at 0) view 3
            assert chosen[1:] == [1 - chosen[0], 2, 3]
            checked += 1
    assert checked > 0


def test_overlap_uses_the_reference_depth_when_known():
    """Pairs of cameras 2 m apart, looking the same way: their frustums meet far away, not at 0.5 m."""
    cameras = facing_cameras([(1, 0), (1, 0), (-1, 0), (-1, 0)], spacing=0.0)
    for view in (1, 3):
        cameras.cam_to_world[view, :3, 3] += cameras.cam_to_world[view, :3, 0] * 2.0  # 2 m to its right
    partner = {0: 1, 1: 0, 2: 3, 3: 2}
    sampling = ViewSampling(2, 2, target_overlap=0.5, overlap_depth=0.5)  # one context view, one target
    asked = []

    def reference_depth(view_id: int) -> float:
        asked.append(view_id)
        return 20.0

    for seed in range(20):
        reference, target = sampling.select(random.Random(seed), 4, 2, cameras, reference_depth)
        assert asked[-1] == reference and target == partner[reference]
    nominal = [sampling.select(random.Random(seed), 4, 2, cameras) for seed in range(20)]
    assert any(target != partner[reference] for reference, target in nominal)  # 0.5 m: nobody overlaps


def test_fit_view_takes_integer_intrinsics_and_refuses_a_crop_it_cannot_make():
    """Intrinsics typed as integers (a hand-written K) are scaled in floating point, not truncated, and a random
    crop asks for its generator, an unknown crop names the choices (mutation testing: the float64 cast, and the
    messages, lost survived)."""
    rgb = np.zeros((40, 80, 3), np.uint8)
    integer = np.array([[50, 0, 40], [0, 50, 20], [0, 0, 1]])
    _, from_integer, _, _ = fit_view(rgb, integer, (10, 20))
    _, from_float, _, _ = fit_view(rgb, integer.astype(np.float64), (10, 20))
    assert from_integer.dtype == np.float64 and np.array_equal(from_integer, from_float)
    assert from_float[0, 0] == 12.5  # 50 px at a quarter of the size
    with pytest.raises(ValueError, match=r"^crop='random' needs an rng$"):
        fit_view(rgb, integer, (10, 10), crop="random")
    with pytest.raises(ValueError, match=r"^crop must be 'center' or 'random', got 'centre'$"):
        fit_view(rgb, integer, (10, 10), crop="centre")
