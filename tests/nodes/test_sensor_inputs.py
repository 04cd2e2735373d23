"""``SensorInputs`` on a recording fake bus: audio that comes before its AudioInfo is held."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from mm_ros.core.drops import DropLog
from mm_ros.nodes.sensor_inputs import PENDING_AUDIO_CHUNKS, SensorInputs, SensorInputsConfig

NS = 1_000_000_000


class RecordingBus:
    """Keeps each subscription's callback by topic so a test can deliver messages by hand."""

    def __init__(self) -> None:
        self.callbacks: dict[str, Any] = {}

    def set_audio_layout(self, layout: str) -> None:
        self.layout = layout

    def resolve(self, name: str) -> str:
        return name

    def now_ns(self) -> int:
        return 0  # no clock yet (sim time before /clock): stamps are not checked

    def create_subscription(self, topic: str, _type: str, callback: Any, _qos: Any) -> None:
        self.callbacks[topic] = callback


def chunk(i: int, samples: int = 160) -> SimpleNamespace:
    """A 10 ms S16LE mono chunk at 16 kHz whose samples all equal ``i``, stamped at i * 10 ms."""
    stamp = 100 * NS + i * 10_000_000
    header = SimpleNamespace(stamp=SimpleNamespace(sec=stamp // NS, nanosec=stamp % NS))
    data = np.full(samples, i, dtype="<i2").tobytes()
    return SimpleNamespace(header=header, audio=SimpleNamespace(data=data))


def info(channels: int = 1) -> SimpleNamespace:
    return SimpleNamespace(
        channels=channels, sample_rate=16000, sample_format="S16LE", coding_format="wave"
    )


def make_inputs() -> tuple[SensorInputs, RecordingBus, DropLog, list[str]]:
    bus = RecordingBus()
    warnings: list[str] = []
    drops = DropLog(warnings.append)
    inputs = SensorInputs(bus, SensorInputsConfig(), drops)  # type: ignore[arg-type]
    return inputs, bus, drops, warnings


def test_chunks_before_the_first_audio_info_are_kept_and_stored_in_order_when_it_comes() -> None:
    inputs, bus, _, warnings = make_inputs()
    on_audio, on_info = bus.callbacks["audio/audio_stamped"], bus.callbacks["audio/audio_info"]
    for i in range(3):
        on_audio(chunk(i))
    assert inputs.intakes["audio"].stats().accepted == 0  # nothing decodable yet, nothing lost
    assert inputs.intakes["audio"].stats().rejected == 0
    on_info(info())
    on_audio(chunk(3))
    stats = inputs.intakes["audio"].stats()
    assert (stats.accepted, stats.rejected, warnings) == (4, 0, [])
    view = inputs.windows.audio.view(100 * NS + 40_000_000, 40_000_000)
    levels = np.round(view.samples.reshape(4, 160).mean(axis=1) * 32768).astype(int)
    assert levels.tolist() == [0, 1, 2, 3]


def test_without_audio_info_the_oldest_held_chunk_is_rejected_and_named() -> None:
    inputs, bus, drops, warnings = make_inputs()
    on_audio = bus.callbacks["audio/audio_stamped"]
    for i in range(PENDING_AUDIO_CHUNKS + 2):
        on_audio(chunk(i))
    stats = inputs.intakes["audio"].stats()
    assert (stats.accepted, stats.rejected) == (0, 2)
    assert drops.counts() == {("audio/audio_stamped", "InvalidValueError"): 2}
    assert len(warnings) == 1  # the second one is counted, not logged again
    assert "before any AudioInfo on audio/audio_info" in warnings[0]


def test_an_invalid_audio_info_is_dropped_and_the_chunks_wait_for_a_valid_one() -> None:
    inputs, bus, drops, warnings = make_inputs()
    bus.callbacks["audio/audio_stamped"](chunk(0))
    bus.callbacks["audio/audio_info"](info(channels=0))
    stats = inputs.intakes["audio"].stats()
    assert (stats.accepted, stats.rejected) == (0, 0)  # held, not lost
    assert drops.counts() == {("audio/audio_info", "InvalidValueError"): 1}
    assert "channels" in warnings[0]
    assert "AudioInfo ignored; none yet" in warnings[0]
    bus.callbacks["audio/audio_info"](info())  # a valid info: the held chunk and new ones stored
    bus.callbacks["audio/audio_stamped"](chunk(1))
    assert inputs.intakes["audio"].stats().accepted == 2
    bus.callbacks["audio/audio_info"](info(channels=0))  # a bad one later changes nothing
    bus.callbacks["audio/audio_stamped"](chunk(2))
    assert inputs.intakes["audio"].stats().accepted == 3
