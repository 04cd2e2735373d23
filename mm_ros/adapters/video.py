"""Video adapter: K frames through the image adapter + a temporal embedding, pooled to a budget.

Input: ``(B, K, 3, S, S)``, K frames prepared like single images, oldest first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from mm_ros.adapters.image import ImageAdapter
from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from mm_ros.adapters.spec import AdapterSpec


class VideoAdapter(nn.Module):
    """``(B, K, 3, S, S)`` → ``(B, token_count, llm_width)``.

    Frame tokens ``(B, K, n, D)`` get a learned per-frame embedding, are laid out spatial-major
    (each image position's K time steps consecutive) and mean-pooled in groups of
    ``K*n / token_count``, so a budget of ``n`` tokens averages every position over time.
    """

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__()
        self.spec = spec
        self.frames = spec.video_frames
        self.image = ImageAdapter(spec)
        per_frame: int = self.image.token_count
        total = self.frames * per_frame
        if total % spec.token_count:
            raise ConfigError(
                f"video: {self.frames} frames x {per_frame} tokens = {total} is not a multiple of "
                f"the token budget {spec.token_count}"
            )
        self.group = total // spec.token_count
        self.token_count = spec.token_count
        self.temporal = nn.Parameter(torch.randn(1, self.frames, 1, spec.llm_width) * 0.02)

    def forward(self, clip: Tensor) -> Tensor:
        """(B, K, 3, S, S) → (B, N, D)."""
        b = clip.shape[0]
        frames: Tensor = self.image(clip.reshape(b * self.frames, *clip.shape[2:]))  # (B*K, n, D)
        tokens = frames.reshape(b, self.frames, -1, frames.shape[-1]) + self.temporal
        spatial_major = tokens.transpose(1, 2).reshape(b, self.token_count, self.group, -1)
        return spatial_major.mean(2)
