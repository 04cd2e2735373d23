"""What every audio capture source shares: its config and its small protocol."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from mm_ros.core.sensors import AudioChunk


class SourceKind(enum.Enum):
    """Where the microphone node takes audio from."""

    SOUNDDEVICE = "sounddevice"  # a PortAudio capture device
    WAV = "wav"  # a WAV file played in real time (field tests with recorded audio)


@dataclass(frozen=True)
class AudioSourceConfig:
    """Capture settings, built from the node's parameters."""

    source: SourceKind = SourceKind.SOUNDDEVICE
    # Index, or a case-insensitive substring of the name; None: the system's default input.
    device: int | str | None = None
    rate_hz: int = 16_000  # what speech and audio encoders expect; PortAudio resamples if needed
    channels: int = 1
    chunk_s: float = 0.02  # 20 ms: latency low enough for a question, 50 messages/s
    wav_path: str = ""  # for source=wav
    wav_loop: bool = False  # for source=wav: start again at the end (stamps keep increasing)

    def __post_init__(self) -> None:
        if self.rate_hz <= 0:
            raise ConfigError(f"AudioSourceConfig.rate_hz must be > 0, found {self.rate_hz}")
        if self.channels <= 0:
            raise ConfigError(f"AudioSourceConfig.channels must be > 0, found {self.channels}")
        if not 0 < self.chunk_s <= 1.0:
            raise ConfigError(f"AudioSourceConfig.chunk_s must be in (0, 1], found {self.chunk_s}")
        if self.source is SourceKind.WAV and not self.wav_path:
            raise ConfigError("AudioSourceConfig.wav_path is required for source=wav, found ''")

    @property
    def chunk_frames(self) -> int:
        """Samples per channel in one chunk."""
        return max(1, round(self.rate_hz * self.chunk_s))


def make_source(config: AudioSourceConfig) -> AudioSource:
    """Return the source ``config.source`` names (each imported only when chosen)."""
    if config.source is SourceKind.WAV:
        from mm_ros.drivers.wav_source import WavSource

        return WavSource(config)
    from mm_ros.drivers.sounddevice_source import SoundDeviceSource

    return SoundDeviceSource(config)


class AudioSource(Protocol):
    """Delivers `AudioChunk`s to a callback from its own thread until stopped."""

    def start(self, on_chunk: Callable[[AudioChunk], None]) -> None:
        """Begin capturing; ``on_chunk`` runs on the source's thread and must not block."""

    def stop(self) -> None:
        """Stop capturing and release the device; idempotent."""
