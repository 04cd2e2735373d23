"""rosbag2 bags: read MCAP and sqlite3 storage, write with rosbags (readable by ``ros2 bag``).

Reading does not match connections on QoS (real bags whose ``metadata.yaml`` QoS differs from
the storage file's still play). Writing records the correct RIHS01 hash of every type (rosbags'
own hasher maps ``char`` wrongly) and the full message definition.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability
from rosbags.interfaces import QosTime as _Time
from rosbags.rosbag2 import StoragePlugin, Writer

from mm_ros.core.errors import InterfaceError
from mm_ros.interfaces.mcap import McapReader

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mm_ros.interfaces.store import InterfaceStore


class BagError(InterfaceError):
    """A bag folder or file is missing, unreadable or of an unknown storage format."""


@dataclass(frozen=True)
class QosProfile:
    """The part of a recorded QoS profile that matters for replay (rmw enum values)."""

    reliability: int = 1  # 1 reliable, 2 best effort
    durability: int = 2  # 1 transient local, 2 volatile
    history: int = 1  # 1 keep last, 2 keep all
    depth: int = 10


@dataclass
class TopicInfo:
    """One topic of a bag."""

    name: str
    typename: str
    count: int = 0
    qos: QosProfile = field(default_factory=QosProfile)
    type_hash: str = ""
    schema: str = ""  # the embedded ros2msg definition, when the storage has one


@dataclass(frozen=True)
class BagMessage:
    """One recorded message: CDR bytes and the receive time in ns since the epoch."""

    topic: str
    typename: str
    timestamp_ns: int
    data: bytes


def parse_qos_profiles(text: str | list[Any]) -> QosProfile:
    """Read the first profile of rosbag2's ``offered_qos_profiles`` (YAML text, or a list)."""
    try:
        profiles = yaml.safe_load(text) if isinstance(text, str) and text else text
    except yaml.YAMLError:
        return QosProfile()
    if not profiles or not isinstance(profiles, list) or not isinstance(profiles[0], dict):
        return QosProfile()
    first = profiles[0]

    def number(key: str, default: int, allowed: tuple[int, ...]) -> int:
        value = first.get(key, default)
        if isinstance(value, str):  # rosbag2 >= Jazzy writes names like "reliable"
            value = {"reliable": 1, "best_effort": 2, "transient_local": 1, "volatile": 2,
                     "keep_last": 1, "keep_all": 2}.get(value.lower(), default)  # fmt: skip
        return int(value) if value in allowed else default

    return QosProfile(
        reliability=number("reliability", 1, (1, 2)),
        durability=number("durability", 2, (1, 2)),
        history=number("history", 1, (1, 2)),
        depth=int(first.get("depth") or 10),
    )


class BagReader:
    """Read a rosbag2 folder (or one ``.mcap``/``.db3`` file) in storage order."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        folder = self.path if self.path.is_dir() else self.path.parent
        self.metadata: dict[str, Any] = {}
        meta = folder / "metadata.yaml"
        if meta.is_file():
            try:
                loaded = yaml.safe_load(meta.read_text()) or {}
            except yaml.YAMLError as err:
                raise BagError(f"{meta}: not valid YAML: {err}") from err
            self.metadata = loaded.get("rosbag2_bagfile_information", {})
        if self.path.is_file():
            self.files = [self.path]
        else:
            self.files = sorted(self.path.glob("*.mcap")) + sorted(self.path.glob("*.db3"))
        if not self.files:
            raise BagError(f"no .mcap or .db3 storage file in {self.path}")
        self.topics: dict[str, TopicInfo] = {}
        self._scan()

    @property
    def storage(self) -> str:
        """``mcap`` or ``sqlite3``."""
        return "mcap" if self.files[0].suffix == ".mcap" else "sqlite3"

    def _scan(self) -> None:
        for entry in self.metadata.get("topics_with_message_count", []):
            meta = entry.get("topic_metadata", {})
            self.topics[meta["name"]] = TopicInfo(
                meta["name"], meta["type"], int(entry.get("message_count", 0)),
                parse_qos_profiles(meta.get("offered_qos_profiles", "")),
                meta.get("type_description_hash", ""),
            )  # fmt: skip
        counts: dict[str, int] = {}
        for message in self.messages():
            counts[message.topic] = counts.get(message.topic, 0) + 1
        for name, count in counts.items():
            self.topics[name].count = count
        for name in list(self.topics):
            if name not in counts and self.metadata:
                self.topics[name].count = 0

    def messages(self) -> Iterator[BagMessage]:
        """Every message of every storage file, in file order."""
        for path in self.files:
            if path.suffix == ".mcap":
                yield from self._mcap(path)
            else:
                yield from self._sqlite(path)

    def _mcap(self, path: Path) -> Iterator[BagMessage]:
        reader = McapReader(path)
        for message in reader.messages():
            channel = message.channel
            schema = message.schema
            info = self.topics.get(channel.topic)
            if info is None or not info.schema:
                typename = schema.name if schema else (info.typename if info else "")
                new = TopicInfo(
                    channel.topic, typename, info.count if info else 0,
                    parse_qos_profiles(channel.metadata.get("offered_qos_profiles", ""))
                    if not info else info.qos,
                    channel.metadata.get("topic_type_hash", "") or (info.type_hash if info else ""),
                    schema.data.decode("utf-8", "replace") if schema else "",
                )  # fmt: skip
                self.topics[channel.topic] = new
                info = new
            yield BagMessage(channel.topic, info.typename, message.log_time_ns, message.data)

    def _sqlite(self, path: Path) -> Iterator[BagMessage]:
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error as err:
            raise BagError(f"{path}: cannot open sqlite3 storage: {err}") from err
        try:
            columns = {row[1] for row in db.execute("PRAGMA table_info(topics)")}
            extra = ", offered_qos_profiles" if "offered_qos_profiles" in columns else ""
            topics: dict[int, TopicInfo] = {}
            for row in db.execute(f"SELECT id, name, type{extra} FROM topics"):  # noqa: S608
                info = self.topics.get(row[1]) or TopicInfo(row[1], row[2])
                if extra and not self.metadata:
                    info.qos = parse_qos_profiles(row[3])
                self.topics[row[1]] = info
                topics[row[0]] = info
            query = "SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp"
            for topic_id, stamp, data in db.execute(query):
                info = topics[topic_id]
                yield BagMessage(info.name, info.typename, int(stamp), bytes(data))
        except sqlite3.Error as err:
            raise BagError(f"{path}: not a rosbag2 sqlite3 file: {err}") from err
        finally:
            db.close()

    def duration_ns(self) -> tuple[int, int]:
        """First and last receive time in ns."""
        stamps = [m.timestamp_ns for m in self.messages()]
        return (min(stamps), max(stamps)) if stamps else (0, 0)


def _rosbags_qos(profile: QosProfile) -> Qos:
    zero = _Time(0, 0)
    infinite = _Time(2147483647, 4294967295)  # rmw's "infinite" duration as rosbag2 stores it
    return Qos(
        QosHistory(profile.history), profile.depth, QosReliability(profile.reliability),
        QosDurability(profile.durability), infinite, infinite, QosLiveliness.AUTOMATIC, zero,
        False,
    )  # fmt: skip


class BagWriter:
    """Write a rosbag2 bag (version 9) with MCAP or sqlite3 storage."""

    def __init__(self, path: str | Path, store: InterfaceStore, storage: str = "mcap") -> None:
        if storage not in ("mcap", "sqlite3"):
            raise BagError(f"storage must be mcap or sqlite3, found {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists already; rosbag2 will not overwrite a bag")
        self._store = store
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[str, Any] = {}

    def add_topic(self, topic: str, typename: str, qos: QosProfile | None = None) -> None:
        """Declare a topic with its type, definition, correct hash and offered QoS."""
        full = self._store.resolve(typename)
        msgdef, _ = self._store._store.generate_msgdef(full, ros_version=2)
        self._connections[topic] = self._writer.add_connection(
            topic, full, msgdef=msgdef, rihs01=self._store.hash(full),
            offered_qos_profiles=[_rosbags_qos(qos or QosProfile())],
        )  # fmt: skip

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """Append one CDR message received at ``timestamp_ns``."""
        self._writer.write(self._connections[topic], timestamp_ns, data)

    def close(self) -> None:
        """Finish the storage file and write ``metadata.yaml``."""
        self._writer.close()
