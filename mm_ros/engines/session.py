"""Sensor data → tokens: an adapter's preprocessing (numpy) + the runtime selected for it.

This is the contract of DESIGN.md section 8: ``adapter(window) -> tokens[N, d_model]`` in the
LLM's dtype, with metadata (for images, the model-input → source-pixel transform).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mm_ros.adapters.spec import AdapterSpec, Modality
from mm_ros.core.errors import AdapterInputError, ConfigError
from mm_ros.core.preprocessing import (
    ImageTransform,
    prepare_audio,
    preprocess_image,
    resample_imu,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from mm_ros.engines.runtimes.base import Runtime

OUTPUT_DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Encoded:
    """Tokens of one window in the LLM's embedding space, with what produced them."""

    tokens: NDArray[np.generic]  # (N, d_model) in ``dtype``
    dtype: str  # float32 | float16 | bfloat16 (bfloat16 travels as float32 values)
    modality: Modality
    adapter_id: str
    runtime: str  # Runtime.describe()
    transforms: tuple[ImageTransform, ...] = ()  # images: one; video: one per frame


class AdapterSession:
    """Prepare sensor data for one adapter and run it on the runtime chosen for it."""

    def __init__(self, spec: AdapterSpec, runtime: Runtime, dtype: str = "float32") -> None:
        if dtype not in OUTPUT_DTYPES:
            raise ConfigError(f"output dtype: expected one of {OUTPUT_DTYPES}, found {dtype!r}")
        self.spec = spec
        self.runtime = runtime
        self.dtype = dtype

    def _expect(self, *modalities: Modality) -> None:
        if self.spec.modality not in modalities:
            wanted = "/".join(m.value for m in modalities)
            raise AdapterInputError(
                f"adapter {self.spec.name!r} encodes {self.spec.modality.value}, not {wanted} data"
            )

    def _finish(
        self, batch: NDArray[np.float32], transforms: tuple[ImageTransform, ...]
    ) -> Encoded:
        out = self.runtime.run(batch)[0]  # (N, d) float32
        tokens = out.astype(np.float16) if self.dtype == "float16" else out
        return Encoded(
            tokens,
            self.dtype,
            self.spec.modality,
            self.spec.name,
            self.runtime.describe(),
            transforms,
        )

    def _frame(self, image: NDArray[np.generic]) -> tuple[NDArray[np.float32], ImageTransform]:
        pre = self.spec.image
        assert pre is not None  # image/video specs always have it (AdapterSpec checks)
        return preprocess_image(
            image, pre.size_px, pre.resize_mode, pre.mean, pre.std, antialias=pre.antialias
        )

    def encode_image(self, image: NDArray[np.generic]) -> Encoded:
        """(H, W, 3) rgb8 → tokens, with the transform back to source pixels."""
        self._expect(Modality.IMAGE)
        pixels, transform = self._frame(image)
        return self._finish(pixels[None], (transform,))

    def encode_video(self, frames: Sequence[NDArray[np.generic]]) -> Encoded:
        """K (H, W, 3) rgb8 frames, oldest first → tokens."""
        self._expect(Modality.VIDEO)
        if len(frames) != self.spec.video_frames:
            raise AdapterInputError(
                f"video: expected {self.spec.video_frames} frames, found {len(frames)}"
            )
        prepared = [self._frame(f) for f in frames]
        clip = np.stack([p for p, _ in prepared])[None]  # (1, K, 3, S, S)
        return self._finish(clip, tuple(t for _, t in prepared))

    def encode_audio(self, samples: NDArray[np.generic], sample_rate_hz: int) -> Encoded:
        """Mono samples (int16 or float in [-1, 1]) → tokens of the newest clip."""
        self._expect(Modality.AUDIO)
        pre = self.spec.audio
        assert pre is not None
        clip = prepare_audio(samples, sample_rate_hz, pre.sample_rate_hz, pre.clip_samples)
        return self._finish(clip[None], ())

    def encode_imu(
        self, stamps_ns: NDArray[np.int64], values: NDArray[np.generic], end_ns: int | None = None
    ) -> Encoded:
        """(N,) stamps + (N, axes) samples → tokens of the window ending at ``end_ns``."""
        self._expect(Modality.IMU)
        pre = self.spec.imu
        assert pre is not None
        if values.ndim == 2 and values.shape[1] != len(pre.mean):  # noqa: PLR2004 - (N, axes)
            raise AdapterInputError(f"imu: expected {len(pre.mean)} axes, found {values.shape[1]}")
        window = resample_imu(stamps_ns, values, pre.rate_hz, pre.window_s, end_ns)
        return self._finish(window[None], ())
