"""Tiny adapters (a few kB) for tests, benchmarks and the CLI's acceptance check.

Random weights with a fixed seed: they exercise every code path (export, runtimes, reducers)
without a download. Real adapters come from ``mm_ros.train`` or :mod:`mm_ros.adapters.hf`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mm_ros.adapters.build import build_adapter, derived_token_count
from mm_ros.adapters.checkpoint import save_adapter
from mm_ros.adapters.spec import (
    AdapterSpec,
    AudioPreprocessing,
    EncoderFamily,
    EncoderSpec,
    ImagePreprocessing,
    ImuPreprocessing,
    Modality,
    ReducerKind,
    ReducerSpec,
)

TINY_LLM = "mm-tiny"
TINY_LLM_WIDTH = 32
TINY_WIDTH = 16  # encoder width
TINY_IMAGE_PX = 32  # 4x4 grid of 8 px patches (16 tokens; concat4 → 4)
TINY_PATCH_PX = 8
TINY_AUDIO = AudioPreprocessing(sample_rate_hz=16000, clip_s=0.26, n_fft=128, hop=64, n_mels=16)
TINY_IMU = ImuPreprocessing(rate_hz=50.0, window_s=1.0)  # 50 rows x 6 axes
TINY_TOKENS = 8  # audio / IMU / video token budget


def tiny_hf_config(family: EncoderFamily) -> dict[str, Any]:
    """Return a small config dict for an HF encoder family (CLIP, SigLIP, Whisper)."""
    if family is EncoderFamily.CLAP:
        return {
            "spec_size": 64,
            "num_mel_bins": TINY_AUDIO.n_mels,
            "patch_size": 4,
            "patch_stride": [4, 4],
            "window_size": 4,
            "depths": [1, 1],
            "num_attention_heads": [2, 2],
            "hidden_size": TINY_WIDTH,
            "patch_embeds_hidden_size": TINY_WIDTH // 2,  # doubles per stage: TINY_WIDTH out
            "projection_dim": TINY_WIDTH,
            "enable_fusion": False,
        }
    if family is EncoderFamily.WHISPER:
        return {
            "d_model": TINY_WIDTH,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "decoder_layers": 1,
            "decoder_attention_heads": 2,
            "encoder_ffn_dim": 32,
            "decoder_ffn_dim": 32,
            "num_mel_bins": TINY_AUDIO.n_mels,
            "max_source_positions": TINY_AUDIO.frames // 2,
            "vocab_size": 64,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "decoder_start_token_id": 1,
        }
    return {
        "hidden_size": TINY_WIDTH,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": TINY_IMAGE_PX,
        "patch_size": TINY_PATCH_PX,
    }


def tiny_spec(
    modality: Modality,
    reducer: ReducerKind = ReducerKind.NONE,
    family: EncoderFamily | None = None,
    name: str = "",
) -> AdapterSpec:
    """Return a valid tiny spec for ``modality``, image ``reducer`` and encoder ``family``."""
    defaults = {
        Modality.IMAGE: EncoderFamily.VIT,
        Modality.VIDEO: EncoderFamily.VIT,
        Modality.AUDIO: EncoderFamily.AUDIO_CONV,
        Modality.IMU: EncoderFamily.IMU_CONV,
    }
    chosen = family or defaults[modality]
    hf = chosen in (
        EncoderFamily.CLIP,
        EncoderFamily.SIGLIP,
        EncoderFamily.WHISPER,
        EncoderFamily.CLAP,
    )
    encoder = EncoderSpec(
        chosen,
        width=TINY_WIDTH,
        depth=1,
        heads=2,
        patch_px=TINY_PATCH_PX,
        hf_config=tiny_hf_config(chosen) if hf else {},
    )
    factor = 2 if reducer is ReducerKind.PATCH_MINING else 1
    image = None
    if modality in (Modality.IMAGE, Modality.VIDEO):
        image = ImagePreprocessing(size_px=TINY_IMAGE_PX * factor)
    spec = AdapterSpec(
        name=name or f"tiny-{modality.value}-{chosen.value}-{reducer.value}",
        modality=modality,
        encoder=encoder,
        llm_id=TINY_LLM,
        llm_width=TINY_LLM_WIDTH,
        token_count=TINY_TOKENS,
        image=image,
        audio=TINY_AUDIO if modality is Modality.AUDIO else None,
        imu=TINY_IMU if modality is Modality.IMU else None,
        reducer=ReducerSpec(
            kind=reducer, hires_factor=2, keep_ratio=0.5, min_tokens=2, max_tokens=6
        ),
        video_frames=2 if modality is Modality.VIDEO else 0,
    )
    if modality is Modality.IMAGE:
        spec = dataclasses.replace(spec, token_count=derived_token_count(spec))
    return spec


def make_tiny_adapter(folder: Path, spec: AdapterSpec, seed: int = 0) -> Path:
    """Build ``spec`` with seeded random weights and save it as an adapter folder."""
    return save_adapter(build_adapter(spec, seed=seed), spec, folder)
