"""The module teacher: user factories by import path, both output layouts, and the errors users will hit."""

from __future__ import annotations

import pytest
import torch

from psfm.teachers import build_teacher


def test_feature_map_factory_with_kwargs(factories: str, images: torch.Tensor) -> None:
    teacher = build_teacher("module", factory=f"{factories}:build_map", kwargs={"dim": 5, "stride": 8})

    targets = teacher(images, (4, 4))

    assert teacher.dim == 5
    with torch.no_grad():
        feature_map = teacher.model(images)  # [2, 5, 8, 8]: each student patch covers 2 x 2 cells
    expected = torch.nn.functional.avg_pool2d(feature_map, 2).flatten(2).transpose(1, 2)
    torch.testing.assert_close(targets, expected)


def test_token_factory_dim_is_probed_and_patch_size_places_tokens(factories: str, images: torch.Tensor) -> None:
    teacher = build_teacher("module", factory=f"{factories}:build_tokens", kwargs={"width": 12})

    targets = teacher(images, (4, 4))

    assert not hasattr(teacher.model, "dim") and teacher.dim == 12
    with torch.no_grad():
        tokens = teacher.model(images)
    torch.testing.assert_close(targets, tokens)


def test_token_factory_with_a_grid_attribute(factories: str) -> None:
    teacher = build_teacher("module", factory=f"{factories}:build_grid_tokens", img_size=(32, 64))
    images = torch.rand(1, 3, 48, 48)

    targets = teacher(images, (2, 4))

    assert teacher.model.grid == (2, 4)
    with torch.no_grad():
        tokens = teacher.model(torch.nn.functional.interpolate(images, size=(32, 64), mode="bilinear", antialias=True))
    torch.testing.assert_close(targets, tokens)


def test_probe_size_sets_the_dry_run(factories: str) -> None:
    teacher = build_teacher("module", factory=f"{factories}:build_grid_tokens", probe_size=32)

    assert teacher.model.grid == (2, 2)  # left by the only call so far, the 32 x 32 probe
    assert teacher.dim == 12


def test_unusable_output_shape_is_explained(factories: str, images: torch.Tensor) -> None:
    teacher = build_teacher("module", factory=f"{factories}:build_pooled")  # declares dim, so no probe

    with pytest.raises(ValueError, match=r"returned shape \(2, 4\) for 2 images"):
        teacher(images, (4, 4))


@pytest.mark.parametrize(
    ("factory", "error", "message"),
    [
        ("no_such_package_xyz.models:build", ImportError, "no_such_package_xyz"),
        ("{factories}:build_nothing", ImportError, "has no attribute 'build_nothing'"),
        ("{factories}.build_map", ValueError, "package.module:function"),
        ("{factories}:NOT_CALLABLE", TypeError, "not a callable"),
        ("{factories}:build_not_a_module", TypeError, "not a torch.nn.Module"),
        ("{factories}:build_unplaced_tokens", ValueError, "`grid`"),
    ],
)
def test_errors_name_the_problem(factories: str, factory: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build_teacher("module", factory=factory.format(factories=factories))


def test_joint_views_module_sees_each_scene_whole_and_scenes_apart(factories: str) -> None:
    teacher = build_teacher("module", factory=f"{factories}:build_cross_view", joint_views=True)
    scenes = torch.rand(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(2))  # B V 3 H W

    targets = teacher.forward_views(scenes, (4, 4))

    assert teacher.joint_views and targets.shape == (2, 3, 16, 4)
    with torch.no_grad():
        torch.testing.assert_close(targets, teacher.model(scenes))
    repainted = scenes.clone()
    repainted[0, 2] = torch.rand(3, 64, 64)
    after = teacher.forward_views(repainted, (4, 4))
    assert not torch.allclose(after[0, 0], targets[0, 0], atol=1e-4), "view 0 must see view 2 of its scene"
    torch.testing.assert_close(after[1], targets[1], rtol=0, atol=0)  # another scene is untouched
    single = teacher(scenes[0, :1], (4, 4))  # a lone image is a one-view scene
    with torch.no_grad():
        torch.testing.assert_close(single, teacher.model(scenes[:1, :1])[:, 0])


def test_per_view_teachers_see_views_alone_through_the_same_call(factories: str) -> None:
    teacher = build_teacher("module", factory=f"{factories}:build_map")
    scenes = torch.rand(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(3))

    targets = teacher.forward_views(scenes, (4, 4))

    assert not teacher.joint_views
    torch.testing.assert_close(targets, teacher(scenes.flatten(0, 1), (4, 4)).unflatten(0, (2, 3)))
