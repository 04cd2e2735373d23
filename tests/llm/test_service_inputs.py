"""AnswerEngine on snapshots a live robot produces: other audio rates, stale or missing data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mm_ros.core.sensors import AudioChunk, ImuSample
from mm_ros.core.windows import (
    AudioWindow,
    FrameWindow,
    ImuWindow,
    SensorWindows,
    WindowConfig,
)
from mm_ros.llm.generation import GenerationConfig
from mm_ros.llm.service import AnswerEngine, Query, ServiceSettings

if TYPE_CHECKING:
    from mm_ros.llm.backends.base import LoadedBackend

NS = 1_000_000_000
END_NS = 100 * NS  # the newest data


def windows(audio_rate_hz: int) -> SensorWindows:
    audio = AudioWindow(WindowConfig(10 * NS, 1000))
    imu = ImuWindow(WindowConfig(5 * NS, 10_000))
    for i in range(20):  # two seconds of a quiet tone, in 100 ms chunks
        n = audio_rate_hz // 10
        t = (np.arange(n) + i * n) / audio_rate_hz
        tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None]
        audio.add(AudioChunk(END_NS - 2 * NS + i * NS // 10, audio_rate_hz, tone))
    for i in range(400):  # two seconds at 200 Hz, standing still
        stamp = END_NS - 2 * NS + i * NS // 200
        imu.add(ImuSample(stamp, "imu", (0.0, 0.0, 9.81), (0.0, 0.0, 0.0), None))
    image = FrameWindow(WindowConfig(2 * NS, 60))  # the camera sent nothing
    return SensorWindows(image=image, audio=audio, imu=imu)


def engine(backend: LoadedBackend) -> AnswerEngine:
    return AnswerEngine(backend, ServiceSettings(GenerationConfig(max_new_tokens=2)))


def test_audio_of_another_rate_is_resampled_to_the_adapters(tiny: LoadedBackend) -> None:
    answering = engine(tiny)
    query = Query("what did I just hear?", modalities=("audio",))
    for rate in (16000, 48000, 44100):
        snapshot = windows(rate).snapshot(END_NS, answering.spans_ns(query))
        answer = answering.answer(query, snapshot)
        assert answer.error == "", rate
        assert answer.modalities == ("audio",)


def test_stale_and_missing_modalities_are_named_with_their_age(tiny: LoadedBackend) -> None:
    answering = engine(tiny)
    query = Query("how am I moving?")
    snapshot = windows(16000).snapshot(END_NS, answering.spans_ns(query))
    fresh = answering.answer(query, snapshot, now_ns=END_NS + NS // 2)
    assert fresh.error == ""
    assert fresh.warnings == ("image: no data, left out of the answer",)
    late = answering.answer(query, snapshot, now_ns=END_NS + 12 * NS)
    assert "audio: newest data is 12.0 s old (stale after 1 s)" in late.warnings
    assert any(w.startswith("imu: newest data is 12.0 s old") for w in late.warnings)
    asked_at = answering.answer(
        Query("how am I moving?", at_ns=END_NS), snapshot, now_ns=END_NS + 12 * NS
    )
    assert asked_at.warnings == fresh.warnings  # about that stamp, the data was fresh
    assert answering.answer(query, snapshot).warnings == ()  # no clock: nothing judged
