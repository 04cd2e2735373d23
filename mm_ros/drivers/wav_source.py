"""Play a WAV file as if it were a microphone: chunks in real time with capture stamps.

Reads PCM WAV (8/16/24/32-bit) with the stdlib ``wave`` module; converts to the configured rate
(`mm_ros.core.audio.resample`) and to mono when the config asks for one channel.
"""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mm_ros.core.audio import SampleFormat, decode_pcm, resample
from mm_ros.core.errors import ConfigError, DecodeError
from mm_ros.core.sensors import AudioChunk

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from numpy.typing import NDArray

    from mm_ros.drivers.audio_source import AudioSourceConfig

NS_PER_S = 1_000_000_000
_WIDTH_FORMATS = {
    1: SampleFormat.U8,
    2: SampleFormat.S16LE,
    3: SampleFormat.S24LE,
    4: SampleFormat.S32LE,
}


def read_wav(path: Path) -> tuple[int, NDArray[np.float32]]:
    """Return (rate_hz, (N, C) float32 samples) of a PCM WAV file."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            data = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as err:
        raise DecodeError(
            f"{path} is not a PCM WAV file: {err}", field="wav", expected="PCM WAV", found=str(err)
        ) from err
    if width not in _WIDTH_FORMATS:
        raise DecodeError(
            f"{path} has {width}-byte samples",
            field="sampwidth",
            expected=sorted(_WIDTH_FORMATS),
            found=width,
        )
    return rate, decode_pcm(data, _WIDTH_FORMATS[width], channels)


def write_wav(path: Path, rate_hz: int, samples: NDArray[np.float32]) -> None:
    """Write (N, C) float samples in [-1, 1] as 16-bit PCM (for recordings and tests)."""
    pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(int(samples.shape[1]))
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(pcm.tobytes())


class WavSource:
    """Delivers the chunks of a WAV file on its own thread, paced by the clock.

    Chunk k is stamped ``t0 + k * chunk`` (t0 = clock at ``start``) and delivered once the clock
    has passed its end, as a live microphone would. ``realtime=False`` delivers at once (tests,
    offline conversion). ``finished`` is set when the file (without loop) has been played.
    """

    def __init__(
        self,
        config: AudioSourceConfig,
        *,
        realtime: bool = True,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.realtime = realtime
        self._clock_ns = clock_ns
        self._stop = threading.Event()
        self.finished = threading.Event()
        self._thread: threading.Thread | None = None
        self.chunks = 0

    def load(self) -> NDArray[np.float32]:
        """Read the file and convert it to the configured rate and channels: (N, C) float32."""
        rate, samples = read_wav(Path(self.config.wav_path))
        channels = self.config.channels
        if samples.shape[1] != channels:
            if channels != 1:
                raise ConfigError(
                    f"{self.config.wav_path} has {samples.shape[1]} channels, config asks for "
                    f"{channels}; only down-mixing to 1 channel is supported"
                )
            samples = samples.mean(axis=1, dtype=np.float32)[:, None]
        if rate != self.config.rate_hz:
            columns = [resample(samples[:, c], rate, self.config.rate_hz) for c in range(channels)]
            samples = np.stack(columns, axis=1)
        return samples

    def chunks_from(
        self, start_ns: int, samples: NDArray[np.float32] | None = None
    ) -> Iterator[AudioChunk]:
        """Yield the file's (or ``samples``') chunks stamped from ``start_ns``; loops if set."""
        samples = self.load() if samples is None else samples
        size, rate = self.config.chunk_frames, self.config.rate_hz
        offset = 0  # samples since start_ns
        while True:
            for first in range(0, samples.shape[0], size):
                block = samples[first : first + size]
                yield AudioChunk(start_ns + offset * NS_PER_S // rate, rate, block)
                offset += block.shape[0]
            if not self.config.wav_loop:
                return

    def start(self, on_chunk: Callable[[AudioChunk], None]) -> None:
        """Read the file and start delivering chunks to ``on_chunk`` from a thread."""
        samples = self.load()  # file errors surface here, not on the thread
        chunks = self.chunks_from(self._clock_ns(), samples)
        self._stop.clear()
        self.finished.clear()
        self._thread = threading.Thread(
            target=self._run, args=(chunks, on_chunk), name="wav-source", daemon=True
        )
        self._thread.start()

    def _run(self, chunks: Iterator[AudioChunk], on_chunk: Callable[[AudioChunk], None]) -> None:
        try:
            for chunk in chunks:
                if self.realtime:
                    wait_s = (chunk.end_ns - self._clock_ns()) / NS_PER_S
                    if wait_s > 0 and self._stop.wait(wait_s):
                        return
                if self._stop.is_set():
                    return
                on_chunk(chunk)
                self.chunks += 1
        finally:
            self.finished.set()

    def stop(self) -> None:
        """Stop delivering and wait for the thread; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
