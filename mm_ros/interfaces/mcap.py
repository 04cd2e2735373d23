"""A small MCAP reader (the rosbag2 default storage since Iron), stdlib only.

It yields every message record with its channel and schema as written, and does not match
channels on QoS: real bags whose ``metadata.yaml`` QoS differs from the storage file's still
play (rosbags 0.11's reader returns no messages for them).
Format: https://mcap.dev/spec (records = opcode u8, length u64 LE, content).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mm_ros.core.errors import InterfaceError

if TYPE_CHECKING:
    from collections.abc import Iterator

MAGIC = b"\x89MCAP0\r\n"
_HEADER, _FOOTER, _SCHEMA, _CHANNEL, _MESSAGE, _CHUNK, _DATA_END = 1, 2, 3, 4, 5, 6, 15


class McapError(InterfaceError):
    """An MCAP file is truncated, corrupt or uses a feature this reader lacks."""


@dataclass(frozen=True)
class Schema:
    """A message type as embedded in the file (``ros2msg``: the concatenated definitions)."""

    id: int
    name: str  # e.g. std_msgs/msg/String
    encoding: str  # ros2msg | ros2idl | ...
    data: bytes


@dataclass(frozen=True)
class Channel:
    """A topic in the file and its metadata (``offered_qos_profiles``, ``topic_type_hash``)."""

    id: int
    schema_id: int
    topic: str
    message_encoding: str  # cdr for ROS 2
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """One recorded message: CDR bytes plus times in ns since the epoch."""

    channel: Channel
    schema: Schema | None
    sequence: int
    log_time_ns: int
    publish_time_ns: int
    data: bytes


class _Cursor:
    def __init__(self, data: bytes | memoryview, where: str) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.where = where

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            msg = (
                f"{self.where}: expected {n} more bytes at offset {self.pos}, "
                f"found {len(self.data) - self.pos}"
            )
            raise McapError(msg)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return int(struct.unpack("<H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.take(8))[0])

    def string(self) -> str:
        return bytes(self.take(self.u32())).decode("utf-8")

    def prefixed_bytes(self) -> bytes:
        return bytes(self.take(self.u32()))

    def string_map(self) -> dict[str, str]:
        end = self.u32() + self.pos
        out = {}
        while self.pos < end:
            key = self.string()
            out[key] = self.string()
        return out

    def at_end(self) -> bool:
        return self.pos >= len(self.data)


def _records(cursor: _Cursor) -> Iterator[tuple[int, memoryview]]:
    while not cursor.at_end():
        opcode = cursor.take(1)[0]
        length = cursor.u64()
        yield opcode, cursor.take(length)


class McapReader:
    """Read schemas, channels and messages of one ``.mcap`` file in file order."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.schemas: dict[int, Schema] = {}
        self.channels: dict[int, Channel] = {}

    def messages(self) -> Iterator[Message]:
        """Yield every message in file order (chunks decoded in place)."""
        with self.path.open("rb") as handle:
            data = self._read(handle)
        cursor = _Cursor(data, str(self.path))
        if bytes(cursor.take(len(MAGIC))) != MAGIC:
            msg = f"{self.path}: expected MCAP magic {MAGIC!r} at the start"
            raise McapError(msg)
        yield from self._walk(cursor)

    def _read(self, handle: BinaryIO) -> bytes:
        try:
            return handle.read()
        except OSError as err:
            raise McapError(f"{self.path}: cannot read: {err}") from err

    def _walk(self, cursor: _Cursor) -> Iterator[Message]:
        for opcode, body in _records(cursor):
            if opcode == _FOOTER:
                return
            if opcode == _CHUNK:
                yield from self._walk(self._chunk(body))
                continue
            record = _Cursor(body, f"{self.path} record 0x{opcode:02x}")
            if opcode == _SCHEMA:
                schema = Schema(record.u16(), record.string(), record.string(),
                                record.prefixed_bytes())  # fmt: skip
                self.schemas[schema.id] = schema
            elif opcode == _CHANNEL:
                channel = Channel(record.u16(), record.u16(), record.string(), record.string(),
                                  record.string_map())  # fmt: skip
                self.channels[channel.id] = channel
            elif opcode == _MESSAGE:
                yield self._message(record)

    def _message(self, record: _Cursor) -> Message:
        channel_id = record.u16()
        channel = self.channels.get(channel_id)
        if channel is None:
            msg = f"{self.path}: message on channel {channel_id}, which was never declared"
            raise McapError(msg)
        sequence, log_time, publish_time = record.u32(), record.u64(), record.u64()
        data = bytes(record.data[record.pos :])
        schema = self.schemas.get(channel.schema_id)
        return Message(channel, schema, sequence, log_time, publish_time, data)

    def _chunk(self, body: memoryview) -> _Cursor:
        chunk = _Cursor(body, f"{self.path} chunk")
        chunk.take(16)  # message start and end times
        size = chunk.u64()
        chunk.take(4)  # CRC of the uncompressed records
        compression = chunk.string()
        records = chunk.take(chunk.u64())
        if compression == "":
            return _Cursor(records, f"{self.path} chunk")
        raw = _decompress(compression, bytes(records), size, self.path)
        return _Cursor(raw, f"{self.path} chunk")


def _decompress(compression: str, data: bytes, size: int, path: Path) -> bytes:
    try:
        if compression == "zstd":
            import zstandard

            return bytes(zstandard.ZstdDecompressor().decompress(data, max_output_size=size))
        if compression == "lz4":
            import lz4.frame  # type: ignore[import-untyped]

            return bytes(lz4.frame.decompress(data))
    except ImportError as err:
        msg = f"{path}: chunk compressed with {compression}; pip install the {err.name} package"
        raise McapError(msg) from err
    msg = f"{path}: chunk compression {compression!r} unknown (expected '', zstd or lz4)"
    raise McapError(msg)
