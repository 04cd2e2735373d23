"""Errors raised by mm_ros; every message says what was expected and what was found."""

from __future__ import annotations


class MmRosError(Exception):
    """Base class of every error mm_ros raises on purpose."""


class ConfigError(MmRosError, ValueError):
    """A setting has a value the component cannot work with."""


class InterfaceError(MmRosError):
    """Base class of message-definition and serialization errors."""


class UnknownTypeError(InterfaceError, KeyError):
    """A ROS interface type name is not in the type store."""

    def __init__(self, name: str, known: list[str], close: list[str]) -> None:
        self.name = name
        self.close = close
        hint = f"; closest known: {', '.join(close)}" if close else ""
        super().__init__(f"unknown interface type {name!r} ({len(known)} types known{hint})")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class DefinitionError(InterfaceError, ValueError):
    """A .msg/.srv/.action text cannot be parsed or names an unknown type."""


class CdrError(InterfaceError, ValueError):
    """CDR bytes do not decode into the requested type, or a value does not encode."""


class DecodeError(MmRosError, ValueError):
    """A sensor message (or its plain fields) cannot become a core value.

    ``field`` names the offending field, ``expected`` and ``found`` say what was wanted and what
    came; the message text carries all three so a log line alone is enough.
    """

    def __init__(self, message: str, *, field: str, expected: object, found: object) -> None:
        self.field = field
        self.expected = expected
        self.found = found
        super().__init__(message)


class UnsupportedEncodingError(DecodeError):
    """An image encoding, audio sample format or codec mm_ros does not decode."""


class SizeMismatchError(DecodeError):
    """Dimensions, step, channel count and data length do not agree (or data is short)."""


class InvalidValueError(DecodeError):
    """A value is out of range: NaN/inf, zero channels, rate 0, absurd dimensions."""


def require_in_range(what: str, field: str, value: int, high: int, unit: str = "") -> None:
    """Raise `InvalidValueError` unless 0 < value <= high (sizes, rates, channel counts)."""
    if not 0 < value <= high:
        raise InvalidValueError(
            f"{what} {field} {value}{unit} outside 1..{high}",
            field=field,
            expected=f"1..{high}",
            found=value,
        )


class AudioDeviceError(MmRosError):
    """The audio backend (PortAudio) or the requested capture device is unavailable."""


class CameraDeviceError(MmRosError):
    """A camera device, video file, stream URL or image folder cannot be opened or read."""


class AdapterError(MmRosError):
    """Base class of modality-adapter errors (checkpoints, inputs, model construction)."""


class CheckpointError(AdapterError, ValueError):
    """An adapter folder (adapter.json + model.safetensors) cannot be read or written."""


class AdapterInputError(AdapterError, ValueError):
    """Sensor data does not have the size, dtype or values an adapter expects."""


class EngineError(MmRosError):
    """Base class of engine errors: export, build, cache and runtime execution."""


class RuntimeUnavailableError(EngineError):
    """A runtime cannot be used here (library or device missing); ``reason`` says which."""

    def __init__(self, runtime: str, reason: str) -> None:
        self.runtime = runtime
        self.reason = reason
        super().__init__(f"runtime {runtime} unavailable: {reason}")


class ManifestError(EngineError, ValueError):
    """An engine manifest (engines/manifest.yaml) has a missing or invalid entry."""


class ModelError(MmRosError):
    """Base class of language-model service errors (backends, prompts, generation)."""


class BackendError(ModelError):
    """A model folder cannot be loaded as the configured backend."""


class TokenSpaceMismatchError(ModelError, ValueError):
    """Embeddings from an adapter whose id or checkpoint hash differs from the service's."""


class QueryError(ModelError):
    """A query ended without an answer; ``reason`` is one of scheduler.QUERY_FAILURES."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
