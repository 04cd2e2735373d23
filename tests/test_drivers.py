"""Audio sources: sounddevice through a fake InputStream with its callback interface, WAV files."""

from __future__ import annotations

import sys
import threading
import types
import wave
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pytest

from mm_ros.core.errors import AudioDeviceError, ConfigError, DecodeError
from mm_ros.drivers.audio_source import AudioSourceConfig, SourceKind, make_source
from mm_ros.drivers.sounddevice_source import (
    DeviceInfo,
    SoundDeviceSource,
    capture_stamp_ns,
    list_devices,
    load_sounddevice,
    resolve_device,
)
from mm_ros.drivers.wav_source import WavSource, read_wav, write_wav

if TYPE_CHECKING:
    from mm_ros.core.sensors import AudioChunk

S = 1_000_000_000
DEVICES = [
    {"name": "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "max_input_channels": 2,
     "default_samplerate": 48000.0},
    {"name": "HDMI 0", "max_input_channels": 0, "default_samplerate": 48000.0},
    {"name": "ReSpeaker 4 Mic Array (UAC1.0)", "max_input_channels": 6,
     "default_samplerate": 16000.0},
    {"name": "USB Audio Device", "max_input_channels": 1, "default_samplerate": 44100.0},
]  # fmt: skip


class FakeTime:
    """PortAudio's time info: the first sample hit the ADC 30 ms before the callback."""

    currentTime = 100.030  # noqa: N815 - sounddevice's attribute names
    inputBufferAdcTime = 100.000  # noqa: N815


class FakeInputStream:
    """Follows sounddevice.InputStream: callback(indata, frames, time, status) per block."""

    opened: ClassVar[list[FakeInputStream]] = []

    def __init__(self, *, device, samplerate, channels, blocksize, dtype, callback) -> None:
        self.kwargs = {"device": device, "samplerate": samplerate, "channels": channels,
                       "blocksize": blocksize, "dtype": dtype}  # fmt: skip
        self.callback = callback
        self.started = self.closed = False
        FakeInputStream.opened.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def feed(self, block: np.ndarray, status=None) -> None:
        buffer = np.array(block, dtype=np.float32)
        self.callback(buffer, len(buffer), FakeTime(), status)
        buffer[:] = 0  # PortAudio reuses its buffer: the source must have copied


class FakeStatus:
    input_overflow = True

    def __bool__(self) -> bool:
        return True


def fake_backend() -> types.SimpleNamespace:
    FakeInputStream.opened = []
    return types.SimpleNamespace(
        query_devices=lambda: DEVICES, InputStream=FakeInputStream, PortAudioError=RuntimeError
    )


def test_fake_stream_delivers_stamped_copies() -> None:
    config = AudioSourceConfig(device="respeaker", rate_hz=16_000, channels=2, chunk_s=0.01)
    source = SoundDeviceSource(config, backend=fake_backend(), clock_ns=lambda: 50 * S)
    got: list[AudioChunk] = []
    source.start(got.append)
    stream = FakeInputStream.opened[0]
    assert stream.kwargs == {"device": 2, "samplerate": 16_000, "channels": 2, "blocksize": 160,
                             "dtype": "float32"}  # fmt: skip
    assert stream.started
    block = np.tile(np.linspace(-0.5, 0.5, 160, dtype=np.float32)[:, None], (1, 2))
    stream.feed(block)
    stream.feed(block, FakeStatus())
    assert len(got) == 2
    assert source.chunks == 2
    assert source.overflows == 1
    np.testing.assert_array_equal(got[0].samples, block)  # survived the buffer reuse
    assert got[0].stamp_ns == 50 * S - 30_000_000  # ADC time, not delivery time
    assert (got[0].rate_hz, got[0].channels) == (16_000, 2)
    source.stop()
    source.stop()
    assert stream.closed


def test_stamp_falls_back_without_adc_time() -> None:
    no_time = types.SimpleNamespace(currentTime=0.0, inputBufferAdcTime=0.0)
    assert capture_stamp_ns(10 * S, 1600, 16_000, no_time) == 10 * S - S // 10


@pytest.mark.parametrize(
    ("spec", "channels", "expected"),
    [(None, 1, None), (0, 2, 0), ("2", 1, 2), ("respeaker", 4, 2), ("USB AUDIO", 1, 3),
     ("usb audio device", 1, 3)],
)  # fmt: skip
def test_resolve_device(spec, channels, expected) -> None:
    assert resolve_device(list_devices(fake_backend()), spec, channels) == expected


@pytest.mark.parametrize(
    ("spec", "channels", "words"),
    [(1, 1, ["not an input", "ReSpeaker"]), (9, 1, ["9"]), ("webcam", 1, ["webcam", "inputs"]),
     ("a", 1, ["match", "longer name"]), ("usb", 2, ["1 input channels, 2 requested"])],
)  # fmt: skip
def test_resolve_device_errors_list_the_inputs(spec, channels, words) -> None:
    with pytest.raises(AudioDeviceError) as info:
        resolve_device(list_devices(fake_backend()), spec, channels)
    for word in words:
        assert word in str(info.value)


def test_no_input_devices() -> None:
    outputs_only = [DeviceInfo(0, "HDMI", 0, 48000.0)]
    with pytest.raises(AudioDeviceError, match="no audio input device"):
        resolve_device(outputs_only, None, 1)


def test_open_failure_becomes_audio_device_error() -> None:
    def refuse(**_kwargs):
        raise RuntimeError("Invalid sample rate")

    backend = types.SimpleNamespace(
        query_devices=lambda: DEVICES, InputStream=refuse, PortAudioError=RuntimeError
    )
    source = SoundDeviceSource(AudioSourceConfig(rate_hz=12345), backend=backend)
    with pytest.raises(AudioDeviceError, match="Invalid sample rate"):
        source.start(lambda _chunk: None)


def test_missing_portaudio_is_a_clear_error() -> None:
    """Here there is no PortAudio library: sounddevice's OSError must be wrapped."""
    try:
        import sounddevice  # noqa: F401
    except OSError:
        with pytest.raises(AudioDeviceError, match="PortAudio") as info:
            load_sounddevice()
        assert isinstance(info.value.__cause__, OSError)
    else:  # a machine with a sound stack
        assert hasattr(load_sounddevice(), "InputStream")


def test_missing_sounddevice_package_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    with pytest.raises(AudioDeviceError, match=r"mm-ros\[audio\]"):
        load_sounddevice()


def tone_file(tmp_path, rate=8000, channels=2, seconds=0.5):
    t = np.arange(int(rate * seconds)) / rate
    samples = np.stack([0.5 * np.sin(2 * np.pi * 440 * t)] * channels, axis=1).astype(np.float32)
    path = tmp_path / "tone.wav"
    write_wav(path, rate, samples)
    return path, samples


def test_wav_chunks_are_stamped_from_the_start(tmp_path) -> None:
    path, samples = tone_file(tmp_path)
    config = AudioSourceConfig(source=SourceKind.WAV, wav_path=str(path), rate_hz=8000,
                               channels=2, chunk_s=0.1)  # fmt: skip
    chunks = list(WavSource(config).chunks_from(7 * S))
    assert [c.stamp_ns for c in chunks] == [7 * S + i * S // 10 for i in range(5)]
    np.testing.assert_allclose(np.concatenate([c.samples for c in chunks]), samples, atol=2**-15)


def test_wav_source_converts_rate_and_channels(tmp_path) -> None:
    path, _ = tone_file(tmp_path, rate=8000, channels=2, seconds=1.0)
    config = AudioSourceConfig(source=SourceKind.WAV, wav_path=str(path), rate_hz=16_000,
                               channels=1)  # fmt: skip
    audio = WavSource(config).load()
    assert audio.shape == (16_000, 1)
    t = np.arange(16_000) / 16_000
    np.testing.assert_allclose(audio[800:-800, 0], 0.5 * np.sin(2 * np.pi * 440 * t)[800:-800],
                               atol=1e-3)  # fmt: skip


@pytest.mark.parametrize("realtime", [False, True])
def test_wav_source_plays_on_its_thread(tmp_path, realtime: bool) -> None:
    path, samples = tone_file(tmp_path, seconds=0.2)
    config = AudioSourceConfig(source=SourceKind.WAV, wav_path=str(path), rate_hz=8000,
                               channels=2, chunk_s=0.05)  # fmt: skip
    source = WavSource(config, realtime=realtime)
    got: list[AudioChunk] = []
    source.start(got.append)
    assert source.finished.wait(timeout=10)
    source.stop()
    assert len(got) == 4 == source.chunks
    assert np.all(np.diff([c.stamp_ns for c in got]) == S // 20)
    np.testing.assert_allclose(np.concatenate([c.samples for c in got]), samples, atol=2**-15)


def test_wav_loop_and_stop(tmp_path) -> None:
    path, _ = tone_file(tmp_path, seconds=0.1)
    config = AudioSourceConfig(source=SourceKind.WAV, wav_path=str(path), rate_hz=8000,
                               channels=2, chunk_s=0.05, wav_loop=True)  # fmt: skip
    source = WavSource(config, realtime=False)
    enough = threading.Event()
    got: list[AudioChunk] = []

    def on_chunk(chunk: AudioChunk) -> None:
        got.append(chunk)
        if len(got) >= 10:
            enough.set()

    source.start(on_chunk)
    assert enough.wait(timeout=10)
    source.stop()
    stamps = [c.stamp_ns for c in got[:10]]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 10  # stamps keep increasing


def test_wav_errors(tmp_path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(DecodeError, match="not a PCM WAV"):
        read_wav(bad)
    path, _ = tone_file(tmp_path, channels=1)
    config = AudioSourceConfig(source=SourceKind.WAV, wav_path=str(path), rate_hz=8000,
                               channels=2)  # fmt: skip
    with pytest.raises(ConfigError, match="down-mixing"):
        WavSource(config).load()
    with pytest.raises(ConfigError, match="wav_path"):
        AudioSourceConfig(source=SourceKind.WAV)


def test_read_wav_8_bit(tmp_path) -> None:
    path = tmp_path / "u8.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        wav.writeframes(bytes([128, 255, 0]))
    rate, samples = read_wav(path)
    assert rate == 8000
    np.testing.assert_allclose(samples[:, 0], [0.0, 127 / 128, -1.0])


def test_make_source_picks_the_implementation(tmp_path) -> None:
    path, _ = tone_file(tmp_path)
    wav = make_source(AudioSourceConfig(source=SourceKind.WAV, wav_path=str(path)))
    assert isinstance(wav, WavSource)
    assert isinstance(make_source(AudioSourceConfig()), SoundDeviceSource)  # opens nothing yet
