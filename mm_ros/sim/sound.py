"""The episode's soundtrack: room tone plus non-overlapping events at known onsets.

Every event starts with a short attack (at most 5 ms) so that its onset in the waveform is where
the ground truth says (the tests detect onsets within 10 ms).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import NDArray


class Sound(enum.Enum):
    """Kinds of audio events."""

    BEEP = "beep"
    CLAP = "clap"
    BUZZ = "buzz"
    BABBLE = "speech-like babble"
    SILENCE = "silence"  # an explicit quiet stretch: only the room tone


@dataclass(frozen=True)
class SoundEvent:
    """One event on [onset_ns, end_ns) relative to the episode start."""

    sound: Sound
    onset_ns: int
    end_ns: int
    peak: float  # peak amplitude in full scale (0 for silence)


@dataclass(frozen=True)
class SoundConfig:
    """Event timing and levels."""

    rate_hz: int = 16_000
    first_onset_s: float = 0.3
    gap_s: tuple[float, float] = (0.4, 1.5)  # room tone between events
    room_tone_rms: float = 0.002  # -54 dBFS: audible as a noise floor, far below any event

    def __post_init__(self) -> None:
        if self.rate_hz < 8000:  # noqa: PLR2004 - the beeps reach 1.8 kHz, babble 2.5 kHz formants
            raise ConfigError(f"SoundConfig.rate_hz must be >= 8000, found {self.rate_hz}")
        if not 0 < self.gap_s[0] <= self.gap_s[1]:
            raise ConfigError(f"SoundConfig.gap_s needs 0 < low <= high, found {self.gap_s}")


def _ramp(count: int, rate_hz: int, attack_s: float, release_s: float) -> NDArray[np.float64]:
    env = np.ones(count)
    a, r = max(1, int(attack_s * rate_hz)), max(1, int(release_s * rate_hz))
    env[:a] *= np.linspace(0.0, 1.0, a)
    env[-r:] *= np.linspace(1.0, 0.0, r)
    return env


def _beep(rng: np.random.Generator, rate: int) -> NDArray[np.float64]:
    n = int(rng.uniform(0.15, 0.5) * rate)
    freq = rng.uniform(600, 1800)
    return np.sin(2 * np.pi * freq * np.arange(n) / rate) * _ramp(n, rate, 0.003, 0.01)


def _clap(rng: np.random.Generator, rate: int) -> NDArray[np.float64]:
    n = int(0.18 * rate)
    noise = np.diff(rng.normal(0, 1, n + 1))  # first difference: tilt towards high frequencies
    decay = np.exp(-np.arange(n) / (rng.uniform(0.015, 0.04) * rate))
    burst = noise * decay * _ramp(n, rate, 0.001, 0.01)
    peak: NDArray[np.float64] = burst / np.abs(burst).max()
    return peak


def _buzz(rng: np.random.Generator, rate: int) -> NDArray[np.float64]:
    n = int(rng.uniform(0.4, 1.0) * rate)
    t = np.arange(n) / rate
    freq = rng.uniform(100, 220)
    saw = 2 * ((freq * t) % 1.0) - 1
    wobble = 1 - 0.2 * np.sin(2 * np.pi * rng.uniform(4, 9) * t)
    return saw * wobble * _ramp(n, rate, 0.004, 0.02)


def _babble(rng: np.random.Generator, rate: int) -> NDArray[np.float64]:
    """Syllables of a voiced source (gliding f0, two moving formants), no words."""
    pieces: list[NDArray[np.float64]] = []
    f0_base = rng.uniform(100, 220)
    for _syllable in range(int(rng.integers(3, 8))):
        n = int(rng.uniform(0.12, 0.25) * rate)
        t = np.arange(n) / rate
        f0 = f0_base * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 6)))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        formants = (rng.uniform(300, 900), rng.uniform(900, 2500))
        voice = np.zeros(n)
        for harmonic in range(1, 20):
            freq = harmonic * f0_base
            gain = sum(1 / (1 + ((freq - f) / 120) ** 2) for f in formants) / harmonic**0.5
            voice += gain * np.sin(harmonic * phase)
        pieces.append(voice / np.abs(voice).max() * _ramp(n, rate, 0.005, 0.015))
        pieces.append(np.zeros(int(rng.uniform(0.03, 0.08) * rate)))
    return np.concatenate(pieces[:-1])


_SYNTH = {Sound.BEEP: _beep, Sound.CLAP: _clap, Sound.BUZZ: _buzz, Sound.BABBLE: _babble}
_PEAK = {Sound.BEEP: (0.3, 0.6), Sound.CLAP: (0.5, 0.8), Sound.BUZZ: (0.2, 0.4),
         Sound.BABBLE: (0.25, 0.45)}  # fmt: skip


def make_soundtrack(
    duration_ns: int, config: SoundConfig, rng: np.random.Generator
) -> tuple[NDArray[np.float32], tuple[SoundEvent, ...]]:
    """Return (S,) float32 mono audio for the episode and its events in time order."""
    rate = config.rate_hz
    total = duration_ns * rate // 1_000_000_000
    audio = rng.normal(0, config.room_tone_rms, total)
    events: list[SoundEvent] = []
    start = int(config.first_onset_s * rate)
    kinds = list(Sound)
    while True:
        sound = kinds[int(rng.integers(len(kinds)))]
        if sound is Sound.SILENCE:
            wave = np.zeros(int(rng.uniform(0.5, 1.5) * rate))
            peak = 0.0
        else:
            peak = float(rng.uniform(*_PEAK[sound]))
            wave = _SYNTH[sound](rng, rate) * peak
        if start + wave.size > total:
            break
        audio[start : start + wave.size] += wave
        events.append(
            SoundEvent(
                sound,
                start * 1_000_000_000 // rate,
                (start + wave.size) * 1_000_000_000 // rate,
                peak,
            )
        )
        start += wave.size + int(rng.uniform(*config.gap_s) * rate)
    return np.clip(audio, -1.0, 1.0).astype(np.float32), tuple(events)
