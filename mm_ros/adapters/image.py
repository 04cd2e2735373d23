"""Image adapter: encoder (own ViT, HF CLIP / SigLIP) → token reducer → projector.

Input: ``(B, 3, S, S)`` float32 from :func:`mm_ros.core.preprocessing.preprocess_image`.
With ``patch_mining`` S is the high-res side; the encoder sees it average-pooled by r.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import Tensor, nn

from mm_ros.adapters.layers import Encoder, make_projector
from mm_ros.adapters.reducers import make_reducer
from mm_ros.adapters.spec import AdapterSpec, EncoderFamily, EncoderSpec, ReducerKind
from mm_ros.core.errors import ConfigError

HF_IMAGE_FAMILIES = (EncoderFamily.CLIP, EncoderFamily.SIGLIP)


class TinyViT(nn.Module):
    """Patch embedding + learned positions + pre-norm blocks; no class token."""

    def __init__(self, spec: EncoderSpec, image_px: int) -> None:
        super().__init__()
        if image_px % spec.patch_px:
            raise ConfigError(f"vit input {image_px} px is not a multiple of patch {spec.patch_px}")
        self.grid = image_px // spec.patch_px
        self.patch = nn.Conv2d(3, spec.width, spec.patch_px, stride=spec.patch_px)
        self.position = nn.Parameter(torch.randn(1, self.grid * self.grid, spec.width) * 0.02)
        self.encoder = Encoder(spec.width, spec.heads, spec.depth)

    def forward(self, pixels: Tensor) -> Tensor:
        """(B, 3, H, W) → (B, grid*grid, C) in raster order."""
        x = self.patch(pixels).flatten(2).transpose(1, 2)
        return self.encoder(x + self.position)  # type: ignore[no-any-return]


class HfVision(nn.Module):
    """transformers CLIPVisionModel / SiglipVisionModel built from ``hf_config``.

    Eager attention, which both exporters handle; CLIP's class token is dropped.
    """

    def __init__(self, spec: EncoderSpec, image_px: int) -> None:
        super().__init__()
        self.model = hf_vision_model(spec.family, spec.hf_config)
        config: Any = self.model.config
        if config.image_size != image_px:
            raise ConfigError(
                f"{spec.family.value} config expects {config.image_size} px input, "
                f"the adapter feeds {image_px} px"
            )
        if config.hidden_size != spec.width:
            raise ConfigError(
                f"encoder width {spec.width} != {spec.family.value} "
                f"hidden_size {config.hidden_size}"
            )
        self.grid = config.image_size // config.patch_size
        self.skip = 1 if spec.family is EncoderFamily.CLIP else 0  # CLIP prepends a class token

    def forward(self, pixels: Tensor) -> Tensor:
        """(B, 3, H, W) → (B, grid*grid, C)."""
        hidden: Tensor = self.model(pixel_values=pixels).last_hidden_state
        return hidden[:, self.skip :]


def hf_vision_model(family: EncoderFamily, config_dict: dict[str, Any]) -> nn.Module:
    """Instantiate (randomly initialised) the HF vision tower described by ``config_dict``."""
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    classes: dict[EncoderFamily, tuple[Any, Any]] = {
        EncoderFamily.CLIP: (CLIPVisionConfig, CLIPVisionModel),
        EncoderFamily.SIGLIP: (SiglipVisionConfig, SiglipVisionModel),
    }
    config_cls, model_cls = classes[family]
    config = config_cls.from_dict(config_dict)
    return model_cls._from_config(config, attn_implementation="eager")  # type: ignore[no-any-return]


class HiresStem(nn.Module):
    """High-resolution stream for patch mining: one feature cell per patch of the full image."""

    def __init__(self, width: int, patch_px: int) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, width, patch_px, stride=patch_px)
        self.mix = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, pixels: Tensor) -> Tensor:
        """(B, 3, S, S) → (B, C, S/patch, S/patch)."""
        x = F.gelu(self.embed(pixels))
        return x + self.mix(x)  # type: ignore[no-any-return]


def encoder_input_px(spec: AdapterSpec) -> int:
    """Side of the encoder's input: the model input, divided by r for patch mining."""
    assert spec.image is not None
    factor = spec.reducer.hires_factor if spec.reducer.kind is ReducerKind.PATCH_MINING else 1
    if spec.image.size_px % factor:
        raise ConfigError(
            f"image size {spec.image.size_px} px is not a multiple of hires_factor {factor}"
        )
    return spec.image.size_px // factor


def encoder_patch_px(encoder: EncoderSpec) -> int:
    """Patch side of the encoder (from the HF config for HF families)."""
    if encoder.family in HF_IMAGE_FAMILIES:
        return int(encoder.hf_config["patch_size"])
    return encoder.patch_px


class ImageAdapter(nn.Module):
    """``(B, 3, S, S)`` normalised pixels → ``(B, N, llm_width)`` tokens."""

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__()
        if spec.image is None:
            raise ConfigError(f"adapter {spec.name!r} has no image preprocessing section")
        self.spec = spec
        low_px = encoder_input_px(spec)
        self.factor = spec.image.size_px // low_px
        if spec.encoder.family is EncoderFamily.VIT:
            self.encoder: nn.Module = TinyViT(spec.encoder, low_px)
        elif spec.encoder.family in HF_IMAGE_FAMILIES:
            self.encoder = HfVision(spec.encoder, low_px)
        else:
            raise ConfigError(
                f"image adapter: expected encoder family vit/clip/siglip, "
                f"found {spec.encoder.family.value}"
            )
        grid: Any = self.encoder.grid
        self.grid = int(grid)
        self.hires = (
            HiresStem(spec.encoder.width, encoder_patch_px(spec.encoder))
            if self.factor > 1
            else None
        )
        self.reducer = make_reducer(spec.reducer, spec.encoder.width, self.grid)
        self.token_count: int = self.reducer.token_count  # type: ignore[assignment]
        out_width: int = self.reducer.out_width  # type: ignore[assignment]
        self.projector = make_projector(spec.projector, out_width, spec.llm_width)

    def encode(self, pixels: Tensor) -> tuple[Tensor, Tensor | None]:
        """Return encoder tokens (B, L, C) and patch mining's high-res map (B, C, gr, gr)."""
        if self.hires is None:
            return self.encoder(pixels), None
        low = F.avg_pool2d(pixels, self.factor)
        return self.encoder(low), self.hires(pixels)

    def forward(self, pixels: Tensor) -> Tensor:
        """(B, 3, S, S) → (B, N, D)."""
        tokens, hires = self.encode(pixels)
        return self.projector(self.reducer(tokens, hires))  # type: ignore[no-any-return]
