"""Capture from a sound card through ``sounddevice`` (PortAudio), imported only when used.

Tests pass a ``backend`` object instead of the module: anything with ``query_devices()`` and an
``InputStream(device=, samplerate=, channels=, blocksize=, dtype=, callback=)`` whose callback
follows sounddevice's ``callback(indata, frames, time, status)``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mm_ros.core.errors import AudioDeviceError
from mm_ros.core.sensors import AudioChunk

if TYPE_CHECKING:
    from collections.abc import Callable

    from mm_ros.drivers.audio_source import AudioSourceConfig

NS_PER_S = 1_000_000_000


def load_sounddevice() -> Any:
    """Import sounddevice, turning a missing module or PortAudio library into `AudioDeviceError`."""
    try:
        import sounddevice
    except OSError as err:  # raised by sounddevice itself when libportaudio cannot be loaded
        raise AudioDeviceError(
            f"cannot load the PortAudio library ({err}); install it (Debian/Ubuntu: "
            "apt-get install libportaudio2) or use source: wav"
        ) from err
    except ImportError as err:
        raise AudioDeviceError(
            "the sounddevice package is not installed: pip install 'mm-ros[audio]'"
        ) from err
    return sounddevice


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device as the node lists it at start."""

    index: int
    name: str
    max_input_channels: int
    default_samplerate_hz: float

    def __str__(self) -> str:
        return (
            f"[{self.index}] {self.name} ({self.max_input_channels} in, "
            f"{self.default_samplerate_hz:.0f} Hz)"
        )


def list_devices(backend: Any) -> list[DeviceInfo]:
    """Return every device ``backend.query_devices()`` reports, inputs and outputs."""
    return [
        DeviceInfo(
            index=int(d.get("index", i)),
            name=str(d["name"]),
            max_input_channels=int(d["max_input_channels"]),
            default_samplerate_hz=float(d.get("default_samplerate", 0.0)),
        )
        for i, d in enumerate(backend.query_devices())
    ]


def resolve_device(devices: list[DeviceInfo], spec: int | str | None, channels: int) -> int | None:
    """Return the index of the input device ``spec`` names (None: the system default).

    ``spec`` is an index (int or digits) or a case-insensitive substring of a device name; an
    exact name wins over substrings. Raises `AudioDeviceError` naming the inputs available.
    """
    inputs = [d for d in devices if d.max_input_channels > 0]
    available = "; ".join(map(str, inputs)) or "none"
    if not inputs:
        raise AudioDeviceError(f"no audio input device found (devices: {len(devices)})")
    if spec is None or spec == "":
        return None
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        matches = [d for d in inputs if d.index == index]
        if not matches:
            raise AudioDeviceError(
                f"audio device {index} is not an input device; inputs: {available}"
            )
    else:
        wanted = spec.strip().lower()
        matches = [d for d in inputs if d.name.lower() == wanted] or [
            d for d in inputs if wanted in d.name.lower()
        ]
        if not matches:
            raise AudioDeviceError(f"no input device name contains {spec!r}; inputs: {available}")
        if len(matches) > 1:
            raise AudioDeviceError(
                f"{len(matches)} input devices match {spec!r}: "
                f"{'; '.join(map(str, matches))}; give an index or a longer name"
            )
    device = matches[0]
    if device.max_input_channels < channels:
        raise AudioDeviceError(
            f"audio device {device} has {device.max_input_channels} input channels, "
            f"{channels} requested"
        )
    return device.index


def capture_stamp_ns(now_ns: int, frames: int, rate_hz: int, time_info: Any) -> int:
    """Return the capture time of the first sample of a block delivered at ``now_ns``.

    PortAudio says how long ago the first sample hit the converter (``currentTime -
    inputBufferAdcTime``, seconds on the stream's clock); when it does not know (0 on some
    host APIs) the block is taken to have just finished: ``now - frames / rate``.
    """
    adc = float(getattr(time_info, "inputBufferAdcTime", 0.0) or 0.0)
    current = float(getattr(time_info, "currentTime", 0.0) or 0.0)
    latency = current - adc
    if adc > 0 and current > 0 and 0 <= latency < 1.0:
        return now_ns - round(latency * NS_PER_S)
    return now_ns - frames * NS_PER_S // rate_hz


class SoundDeviceSource:
    """Captures float32 chunks of ``config.chunk_frames`` from a PortAudio input device."""

    def __init__(
        self,
        config: AudioSourceConfig,
        *,
        backend: Any | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self._backend = backend
        self._clock_ns = clock_ns
        self._stream: Any | None = None
        self._on_chunk: Callable[[AudioChunk], None] | None = None
        self._lock = threading.Lock()
        self.overflows = 0  # blocks PortAudio flagged with input_overflow (samples were lost)
        self.chunks = 0
        self.device_index: int | None = None

    def backend(self) -> Any:
        """Return the sounddevice module (or the injected backend)."""
        if self._backend is None:
            self._backend = load_sounddevice()
        return self._backend

    def devices(self) -> list[DeviceInfo]:
        """Return the devices PortAudio knows (the node logs them at start)."""
        return list_devices(self.backend())

    def start(self, on_chunk: Callable[[AudioChunk], None]) -> None:
        """Open the device and start delivering chunks to ``on_chunk`` (PortAudio's thread)."""
        backend = self.backend()
        config = self.config
        self.device_index = resolve_device(self.devices(), config.device, config.channels)
        error = getattr(backend, "PortAudioError", OSError)
        self._on_chunk = on_chunk
        try:
            stream = backend.InputStream(
                device=self.device_index,
                samplerate=config.rate_hz,
                channels=config.channels,
                blocksize=config.chunk_frames,
                dtype="float32",
                callback=self._callback,
            )
            stream.start()
        except error as err:
            raise AudioDeviceError(
                f"cannot open audio input {config.device!r} at {config.rate_hz} Hz x "
                f"{config.channels} channels: {err}"
            ) from err
        with self._lock:
            self._stream = stream

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        now = self._clock_ns()
        if status and getattr(status, "input_overflow", True):
            self.overflows += 1
        samples = np.array(indata, dtype=np.float32, copy=True)  # PortAudio reuses its buffer
        chunk = AudioChunk(
            stamp_ns=capture_stamp_ns(now, frames, self.config.rate_hz, time_info),
            rate_hz=self.config.rate_hz,
            samples=samples.reshape(frames, -1),
        )
        self.chunks += 1
        if self._on_chunk is not None:
            self._on_chunk(chunk)

    def stop(self) -> None:
        """Stop and close the stream; idempotent."""
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()
