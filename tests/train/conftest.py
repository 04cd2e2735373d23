"""A small mm-tiny variant and a few episodes of data, built once per session."""

from __future__ import annotations

import pytest

from mm_ros.train import data
from mm_ros.train.mm_tiny import TinyConfig, adapter_specs

SMALL = TinyConfig(
    llm_width=32,
    llm_layers=1,
    llm_heads=2,
    llm_ffn=64,
    image_px=32,
    patch_px=8,
    image_width=16,
    image_depth=1,
    audio_width=16,
    audio_tokens=2,
    imu_width=16,
    imu_tokens=2,
)


@pytest.fixture(scope="session")
def small_inputs() -> data.Inputs:
    return data.Inputs.of(adapter_specs(SMALL))


@pytest.fixture(scope="session")
def small_dataset(small_inputs: data.Inputs) -> data.Dataset:
    config = data.DataConfig(seeds=data.train_seeds(2), snapshots_per_episode=4, duration_s=8.0)
    return data.build_dataset(config, small_inputs)
