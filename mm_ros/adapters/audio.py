"""Audio adapter: log-mel front end (inside the model, so it exports) → encoder → pool → projector.

Input: ``(B, S)`` float32 samples in [-1, 1] from :func:`mm_ros.core.preprocessing.prepare_audio`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import Tensor, nn

from mm_ros.adapters.layers import AttentionPool, Encoder, make_projector
from mm_ros.adapters.spec import AdapterSpec, AudioPreprocessing, EncoderFamily
from mm_ros.core.errors import ConfigError
from mm_ros.core.preprocessing import LOG_FLOOR, hann_window, mel_filterbank


class LogMel(nn.Module):
    """Windowed DFT as a strided conv1d, power, mel filters, log: exports to plain ONNX ops.

    Matches :func:`mm_ros.core.preprocessing.log_mel_reference` (numpy FFT) to float32 rounding.
    """

    basis: Tensor  # (2F, 1, n_fft) windowed cos / -sin
    mel: Tensor  # (n_mels, F)

    def __init__(self, pre: AudioPreprocessing) -> None:
        super().__init__()
        self.hop = pre.hop
        self.bins = pre.n_fft // 2 + 1
        n = np.arange(pre.n_fft)
        k = np.arange(self.bins)[:, None]
        phase = 2.0 * math.pi * k * n / pre.n_fft  # (F, n_fft)
        window = hann_window(pre.n_fft)
        basis = np.concatenate([np.cos(phase) * window, -np.sin(phase) * window])  # (2F, n_fft)
        self.register_buffer(
            "basis", torch.from_numpy(basis[:, None, :].astype(np.float32)), persistent=False
        )
        mel = mel_filterbank(pre.sample_rate_hz, pre.n_fft, pre.n_mels)  # (n_mels, F)
        self.register_buffer("mel", torch.from_numpy(mel), persistent=False)

    def forward(self, wave: Tensor) -> Tensor:
        """(B, S) → (B, n_mels, frames)."""
        spectrum = F.conv1d(wave.unsqueeze(1), self.basis, stride=self.hop)  # (B, 2F, T)
        real, imag = spectrum[:, : self.bins], spectrum[:, self.bins :]
        power = real * real + imag * imag  # (B, F, T)
        return torch.log(torch.clamp(self.mel @ power, min=LOG_FLOOR))


class ConvAudioEncoder(nn.Module):
    """Two conv1d layers (time stride 2) + learned positions + transformer blocks."""

    def __init__(self, spec: AdapterSpec, pre: AudioPreprocessing) -> None:
        super().__init__()
        width = spec.encoder.width
        self.conv1 = nn.Conv1d(pre.n_mels, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        steps = (pre.frames + 1) // 2
        self.position = nn.Parameter(torch.randn(1, steps, width) * 0.02)
        self.encoder = Encoder(width, spec.encoder.heads, spec.encoder.depth)

    def forward(self, mel: Tensor) -> Tensor:
        """(B, n_mels, T) → (B, T/2, C)."""
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel / 4.0 + 1.0))))  # log-mel ~[-14, 6] → ~unit
        return self.encoder(x.transpose(1, 2) + self.position)  # type: ignore[no-any-return]


class WhisperAudioEncoder(nn.Module):
    """transformers WhisperEncoder built from ``hf_config`` on the same log-mel front end."""

    def __init__(self, spec: AdapterSpec, pre: AudioPreprocessing) -> None:
        super().__init__()
        from transformers import WhisperConfig
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        config = WhisperConfig.from_dict(spec.encoder.hf_config)
        config._attn_implementation = "eager"
        if config.num_mel_bins != pre.n_mels or 2 * config.max_source_positions != pre.frames:
            raise ConfigError(
                f"whisper expects {config.num_mel_bins} mels x {2 * config.max_source_positions} "
                f"frames, the front end gives {pre.n_mels} x {pre.frames} (set clip_s/hop)"
            )
        if config.d_model != spec.encoder.width:
            raise ConfigError(
                f"encoder width {spec.encoder.width} != whisper d_model {config.d_model}"
            )
        self.model = WhisperEncoder(config)

    def forward(self, mel: Tensor) -> Tensor:
        """(B, n_mels, 2P) → (B, P, C)."""
        return self.model(input_features=mel).last_hidden_state  # type: ignore[no-any-return]


class ClapAudioEncoder(nn.Module):
    """transformers ClapAudioModel (HTSAT, unfused) built from ``hf_config``.

    Its feature map ``(B, C, F', T')`` becomes ``F' * T'`` tokens.
    """

    def __init__(self, spec: AdapterSpec, pre: AudioPreprocessing) -> None:
        super().__init__()
        from transformers import ClapAudioConfig, ClapAudioModel

        config = ClapAudioConfig.from_dict(spec.encoder.hf_config)
        longest = config.spec_size * (config.spec_size // config.num_mel_bins)
        if config.num_mel_bins != pre.n_mels or pre.frames > longest:
            raise ConfigError(
                f"clap expects {config.num_mel_bins} mels x <= {longest} frames, the front end "
                f"gives {pre.n_mels} x {pre.frames}"
            )
        width = int(config.patch_embeds_hidden_size * 2 ** (len(config.depths) - 1))
        if width != spec.encoder.width:
            raise ConfigError(f"encoder width {spec.encoder.width} != clap features {width}")
        self.model = ClapAudioModel._from_config(  # type: ignore[no-untyped-call]
            config, attn_implementation="eager"
        )

    def forward(self, mel: Tensor) -> Tensor:
        """(B, n_mels, T) → (B, F'*T', C)."""
        features = mel.transpose(1, 2).unsqueeze(1)  # (B, 1, T, n_mels), as ClapFeatureExtractor
        hidden: Tensor = self.model(input_features=features).last_hidden_state  # (B, C, F', T')
        return hidden.flatten(2).transpose(1, 2)


class AudioAdapter(nn.Module):
    """``(B, S)`` samples → ``(B, token_count, llm_width)``."""

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__()
        if spec.audio is None:
            raise ConfigError(f"adapter {spec.name!r} has no audio preprocessing section")
        self.spec = spec
        self.front = LogMel(spec.audio)
        if spec.encoder.family is EncoderFamily.AUDIO_CONV:
            self.encoder: nn.Module = ConvAudioEncoder(spec, spec.audio)
        elif spec.encoder.family is EncoderFamily.WHISPER:
            self.encoder = WhisperAudioEncoder(spec, spec.audio)
        elif spec.encoder.family is EncoderFamily.CLAP:
            self.encoder = ClapAudioEncoder(spec, spec.audio)
        else:
            raise ConfigError(
                f"audio adapter: expected encoder family audio_conv/whisper/clap, "
                f"found {spec.encoder.family.value}"
            )
        self.pool = AttentionPool(spec.encoder.width, spec.encoder.heads, spec.token_count)
        self.token_count = spec.token_count
        self.projector = make_projector(spec.projector, spec.encoder.width, spec.llm_width)

    def forward(self, wave: Tensor) -> Tensor:
        """(B, S) → (B, N, D)."""
        return self.projector(self.pool(self.encoder(self.front(wave))))  # type: ignore[no-any-return]
