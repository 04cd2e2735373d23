"""``microphone``: capture audio and publish it with capture-time stamps.

Capture with PortAudio (sounddevice), or play a WAV file in real time (field tests with recorded
audio); publish in the configured ``audio_common_msgs`` layout.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mm_ros.bus.naming import LATCHED, SENSOR_DATA
from mm_ros.core.audio import (
    PaFormat,
    SampleFormat,
    encode_audio_mgonzs13,
    encode_audio_ros_drivers,
)
from mm_ros.core.errors import ConfigError
from mm_ros.drivers.audio_source import AudioSourceConfig, SourceKind, make_source
from mm_ros.nodes import convert
from mm_ros.nodes.params import AUDIO_LAYOUTS, check_choice, declare_config, param
from mm_ros.nodes.runner import run_node

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus
    from mm_ros.core.sensors import AudioChunk


DESCRIPTION = __doc__ or ""


@dataclass(frozen=True)
class MicrophoneConfig:
    """Parameters of ``microphone``."""

    source: str = param("sounddevice", "sounddevice (a capture device) or wav (a file)")
    device: str = param("", "device index or a substring of its name; empty: system default")
    rate_hz: int = param(16000, "sample rate to capture at")
    channels: int = param(1, "channels to capture")
    chunk_s: float = param(0.02, "seconds of audio per message")
    wav_path: str = param("", "the WAV file for source=wav")
    wav_loop: bool = param(False, "source=wav: start again at the end")
    audio_layout: str = param("ros-drivers", "message layout: ros-drivers or mgonzs13")
    sample_format: str = param("S16LE", "PCM format on the wire (ros-drivers): S16LE, F32LE, ...")
    topic: str = param("audio/audio_stamped", "AudioDataStamped or AudioStamped")
    info_topic: str = param("audio/audio_info", "AudioInfo, latched (ros-drivers only)")
    frame_id: str = param("microphone", "header frame_id")

    def __post_init__(self) -> None:
        check_choice("audio_layout", self.audio_layout, AUDIO_LAYOUTS)
        if self.sample_format not in SampleFormat.__members__:
            msg = (
                f"sample_format must be one of {sorted(SampleFormat.__members__)}, found "
                f"{self.sample_format!r}"
            )
            raise ConfigError(msg)

    def source_config(self) -> AudioSourceConfig:
        """Return the capture settings these parameters describe."""
        try:
            kind = SourceKind(self.source)
        except ValueError as err:
            raise ConfigError(f"source must be sounddevice or wav, found {self.source!r}") from err
        device: int | str | None = None
        if self.device:
            device = int(self.device) if self.device.isdigit() else self.device
        return AudioSourceConfig(
            kind, device, self.rate_hz, self.channels, self.chunk_s, self.wav_path, self.wav_loop
        )


class MicrophoneNode:
    """Starts the source; publishes each chunk from the source's thread."""

    name = "microphone"
    description = DESCRIPTION
    Config = MicrophoneConfig

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.config = declare_config(bus, MicrophoneConfig)
        c = self.config
        source_config = c.source_config()
        bus.set_audio_layout(c.audio_layout)
        self._ros_drivers = c.audio_layout == "ros-drivers"
        typename = (
            "audio_common_msgs/msg/AudioDataStamped"
            if self._ros_drivers
            else "audio_common_msgs/msg/AudioStamped"
        )
        self._make = bus.msg(typename)
        self._audio = bus.create_publisher(c.topic, typename, SENSOR_DATA)
        self._info = (
            bus.create_publisher(c.info_topic, "audio_common_msgs/msg/AudioInfo", LATCHED)
            if self._ros_drivers
            else None
        )
        self.published = 0
        self._source = make_source(source_config)
        for device in getattr(self._source, "devices", list)():  # capture devices only
            logging.getLogger("mm_ros.microphone").info("audio device: %s", device)
        self._source.start(self._on_chunk)

    def _on_chunk(self, chunk: AudioChunk) -> None:
        c = self.config
        if self._ros_drivers:
            fields = encode_audio_ros_drivers(chunk, SampleFormat[c.sample_format])
            stamped, info = convert.audio_ros_drivers(fields, chunk.stamp_ns, c.frame_id)
            if self._info is not None and self.published == 0:
                self._info.publish(info)
            self._audio.publish(self._make(**stamped))
        else:
            fields_m = encode_audio_mgonzs13(chunk, PaFormat.INT16)
            self._audio.publish(
                self._make(**convert.audio_mgonzs13(fields_m, chunk.stamp_ns, c.frame_id))
            )
        self.published += 1

    def close(self) -> None:
        """Stop capturing."""
        self._source.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``microphone``."""
    return run_node(MicrophoneNode, list(sys.argv[1:] if argv is None else argv))
