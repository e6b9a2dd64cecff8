"""Image classifiers: torchvision's models with random weights (``weights=None``: nothing is ever
downloaded), plus ``smallcnn``, a three-layer CNN small enough to train in seconds on a laptop
CPU (the demo's default).

The torchvision models are used as published (ImageNet stems), at any ``--image-size`` >= 32,
so their multiply-accumulate counts match the literature's at 224. ``vit`` is torchvision's
``vit_b_16`` at 224 and above (a multiple of 16); below 224 it is a small ``VisionTransformer``
(patch 4, 6 layers, 192 hidden, 3 heads, MLP 768: ViT-Tiny's width at half its depth) that
needs a multiple of 4, e.g. 32x32.
"""

from __future__ import annotations

from torch import nn

CNN_ARCHS: dict[str, str] = {  # --arch -> torchvision builder
    "resnet18": "resnet18",
    "resnet50": "resnet50",
    "vgg16": "vgg16",
    "mobilenet_v2": "mobilenet_v2",
    "efficientnet_b0": "efficientnet_b0",
    "densenet121": "densenet121",
    "regnet": "regnet_y_400mf",
}
VISION_ARCHS = ("smallcnn", *CNN_ARCHS, "vit")
MIN_IMAGE_SIZE = 32  # five stride-2 stages (VGG's pools) still leave one pixel
VIT_B16_MIN_SIZE = 224
SMALL_VIT = {"patch_size": 4, "num_layers": 6, "num_heads": 3, "hidden_dim": 192, "mlp_dim": 768}


class VisionConfigError(ValueError):
    """An image size the architecture cannot take."""


def small_cnn(num_classes: int) -> nn.Module:
    """conv-relu x3 (32, 64, 128 channels, two 2x2 pools), average-pooled to 4x4 (digits need
    their layout, which a global pool would lose), linear.

    No BatchNorm: in a few epochs at a high learning rate its running statistics lag the weights
    and eval-mode accuracy falls far below training accuracy; three layers train well without."""

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(3, 32), nn.MaxPool2d(2),
        *block(32, 64), nn.MaxPool2d(2),
        *block(64, 128),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128 * 16, num_classes),
    )


def check_image_size(arch: str, image_size: int) -> None:
    if image_size < MIN_IMAGE_SIZE:
        raise VisionConfigError(f"--image-size must be at least {MIN_IMAGE_SIZE}, not {image_size}")
    if arch == "vit":
        if image_size >= VIT_B16_MIN_SIZE and image_size % 16:
            raise VisionConfigError(f"vit at {image_size}x{image_size}: vit_b_16 needs a multiple of 16")
        if image_size < VIT_B16_MIN_SIZE and image_size % SMALL_VIT["patch_size"]:
            raise VisionConfigError(f"vit at {image_size}x{image_size}: the small ViT needs a multiple of 4")


def build_vision_model(arch: str, num_classes: int, image_size: int) -> nn.Module:
    import torchvision.models as tvm  # only when an image model is asked for

    check_image_size(arch, image_size)
    if arch == "smallcnn":
        return small_cnn(num_classes)
    if arch == "vit":
        if image_size >= VIT_B16_MIN_SIZE:
            return tvm.vit_b_16(weights=None, num_classes=num_classes, image_size=image_size)
        return tvm.VisionTransformer(image_size=image_size, num_classes=num_classes, **SMALL_VIT)
    if arch not in CNN_ARCHS:
        raise VisionConfigError(f"unknown image architecture {arch!r}")
    builder = getattr(tvm, CNN_ARCHS[arch])
    return builder(weights=None, num_classes=num_classes)  # type: ignore[no-any-return]
