"""Build the torch module an :class:`AdapterSpec` describes (a table, one entry per modality)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mm_ros.adapters.audio import AudioAdapter
from mm_ros.adapters.image import ImageAdapter
from mm_ros.adapters.imu import ImuAdapter
from mm_ros.adapters.spec import AdapterSpec, EncoderFamily, Modality
from mm_ros.adapters.video import VideoAdapter
from mm_ros.core.errors import ConfigError

VLM_FAMILIES = (EncoderFamily.LLAVA_VISION, EncoderFamily.QWEN2_VL_VISION)


def _image(spec: AdapterSpec) -> nn.Module:
    if spec.encoder.family in VLM_FAMILIES:
        from mm_ros.adapters.vlm import build_vlm_vision

        return build_vlm_vision(spec)
    return ImageAdapter(spec)


BUILDERS: dict[Modality, Callable[[AdapterSpec], nn.Module]] = {
    Modality.IMAGE: _image,
    Modality.VIDEO: VideoAdapter,
    Modality.AUDIO: AudioAdapter,
    Modality.IMU: ImuAdapter,
}


def build_adapter(spec: AdapterSpec, seed: int | None = None) -> nn.Module:
    """Return the adapter module in eval mode; its token count must match ``spec.token_count``.

    ``seed`` makes the random initialisation reproducible (fresh adapters, tests).
    """
    if seed is not None:
        torch.manual_seed(seed)
    module = BUILDERS[spec.modality](spec)
    built = token_count_of(module)
    if built != spec.token_count:
        raise ConfigError(
            f"adapter {spec.name!r}: token_count {spec.token_count} in the spec, but the "
            f"architecture produces {built} tokens"
        )
    return module.eval()


def derived_token_count(spec: AdapterSpec) -> int:
    """Tokens the architecture produces for ``spec`` (image adapters derive it from the grid)."""
    return token_count_of(BUILDERS[spec.modality](spec))


def token_count_of(module: nn.Module) -> int:
    """Return the ``token_count`` attribute every adapter module sets."""
    count: Any = module.token_count
    return int(count)


def example_input(spec: AdapterSpec, batch: int, seed: int = 0) -> torch.Tensor:
    """Return a deterministic random input of the right shape: (batch, *spec.input_shape())."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *spec.input_shape(), generator=generator)
