"""IMU adapter: normalise → conv1d stack → transformer blocks → pool → projector.

Input: ``(B, T, A)`` float32, the window resampled by :func:`mm_ros.core.preprocessing.resample_imu`
(raw units; normalisation is part of the model so every runtime applies it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import Tensor, nn

from mm_ros.adapters.layers import AttentionPool, Encoder, make_projector
from mm_ros.adapters.spec import AdapterSpec, EncoderFamily
from mm_ros.core.errors import ConfigError

KERNEL = 5  # 50 ms at 100 Hz: one gait / head-turn transient spans a few kernels


class ImuAdapter(nn.Module):
    """``(B, T, A)`` → ``(B, token_count, llm_width)``."""

    mean: Tensor  # (1, 1, A) raw units
    std: Tensor  # (1, 1, A)

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__()
        if spec.imu is None:
            raise ConfigError(f"adapter {spec.name!r} has no imu preprocessing section")
        if spec.encoder.family is not EncoderFamily.IMU_CONV:
            raise ConfigError(
                f"imu adapter: expected encoder family imu_conv, found {spec.encoder.family.value}"
            )
        self.spec = spec
        width, axes = spec.encoder.width, len(spec.imu.mean)
        self.register_buffer(
            "mean", torch.tensor(spec.imu.mean).reshape(1, 1, axes), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(spec.imu.std).reshape(1, 1, axes), persistent=False
        )
        pad = KERNEL // 2
        self.convs = nn.ModuleList(
            [
                nn.Conv1d(axes, width, KERNEL, padding=pad),
                nn.Conv1d(width, width, KERNEL, stride=2, padding=pad),
                nn.Conv1d(width, width, KERNEL, stride=2, padding=pad),
            ]
        )
        steps = spec.imu.rows
        for _ in range(2):
            steps = (steps + 1) // 2
        self.position = nn.Parameter(torch.randn(1, steps, width) * 0.02)
        self.encoder = Encoder(width, spec.encoder.heads, spec.encoder.depth)
        self.pool = AttentionPool(width, spec.encoder.heads, spec.token_count)
        self.token_count = spec.token_count
        self.projector = make_projector(spec.projector, width, spec.llm_width)

    def forward(self, window: Tensor) -> Tensor:
        """(B, T, A) → (B, N, D)."""
        x = ((window - self.mean) / self.std).transpose(1, 2)  # (B, A, T)
        for conv in self.convs:
            x = F.gelu(conv(x))
        x = self.encoder(x.transpose(1, 2) + self.position)  # (B, T/4, C)
        return self.projector(self.pool(x))  # type: ignore[no-any-return]
