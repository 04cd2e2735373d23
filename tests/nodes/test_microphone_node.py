"""``microphone`` over the bus, through the WAV source (there is no sound card here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mm_ros.bus import SENSOR_DATA
from mm_ros.bus.zenoh_bus import wait_until
from mm_ros.core.audio import decode_audio_ros_drivers
from mm_ros.drivers.wav_source import write_wav
from mm_ros.nodes.microphone_node import MicrophoneNode
from tests.nodes.helpers import run_executable


def test_wav_source_publishes_the_file_in_stamped_chunks(make_zenoh, tmp_path: Path) -> None:
    rate = 16000
    t = np.arange(rate // 2) / rate  # 0.5 s
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    wav = tmp_path / "tone.wav"
    write_wav(wav, rate, tone.reshape(-1, 1))
    observer = make_zenoh("observer")
    chunks: list = []
    observer.create_subscription(
        "/audio/audio_stamped", "audio_common_msgs/msg/AudioDataStamped", chunks.append, SENSOR_DATA
    )
    mic_bus = make_zenoh(
        "microphone",
        ["--ros-args", "-p", "source:=wav", "-p", f"wav_path:={wav}", "-p", "chunk_s:=0.05"],
    )
    wait_until(lambda: observer.count_subscribers("/audio/audio_stamped") > 0, 10, "the observer")
    node = MicrophoneNode(mic_bus)
    try:
        wait_until(lambda: len(chunks) == 10, 10, "ten 50 ms chunks")
    finally:
        node.close()
    samples = np.concatenate(
        [decode_audio_ros_drivers(c.audio.data, 1, rate, "S16LE").samples[:, 0] for c in chunks]
    )
    assert samples.size == tone.size
    assert np.max(np.abs(samples - tone)) < 2 / 32768  # 16-bit quantisation
    stamps = np.array([c.header.stamp.sec * 10**9 + c.header.stamp.nanosec for c in chunks])
    assert np.all(np.diff(stamps) == 50_000_000)
    assert chunks[0].header.frame_id == "microphone"


def test_missing_portaudio_or_device_is_a_clear_runtime_error(router: str) -> None:
    proc = run_executable("microphone", router, "device:=no-such-device-xyz")
    assert proc.returncode == 1
    assert "microphone: error:" in proc.stderr
    assert "PortAudio" in proc.stderr or "no-such-device-xyz" in proc.stderr
