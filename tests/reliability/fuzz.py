"""Malformed samples for the topics a model service subscribes, from a seed (tests and bench).

``Fuzzer.malformed(typename)`` returns ``(payload, attachment)``: raw CDR bytes and the 33-byte
rmw_zenoh attachment (or a broken one), one of these kinds, picked at random:

- ``random``: random bytes after a valid encapsulation header;
- ``truncated``: a valid message cut short;
- ``huge_length``: a valid message with one 32-bit word (a sequence or string length) set huge;
- ``ff_run``: a run of 0xff bytes;
- ``empty``: no bytes at all;
- ``attachment``: a valid message with no attachment or one of the wrong size;
- ``semantic``: valid CDR with absurd values: images with a wrong encoding / step / size, 0x0 and
  20000x20000 headers; NaN and infinite IMU values; empty and odd-sized audio, AudioInfo with 0
  channels; stamps far in the future or the past; CameraInfo with NaN intrinsics.

``Sender`` puts them on the wire (a raw Zenoh session: what a broken driver would do).
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from mm_ros.bus import naming
from mm_ros.interfaces.values import from_dict
from mm_ros.nodes.convert import header

if TYPE_CHECKING:
    from mm_ros.interfaces.store import TypeStore

# The topics of a model_service with in-process adapters (default parameters, node /mm).
TOPICS = {
    "/camera/image_raw": "sensor_msgs/msg/Image",
    "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
    "/imu/data": "sensor_msgs/msg/Imu",
    "/audio/audio_stamped": "audio_common_msgs/msg/AudioDataStamped",
    "/audio/audio_info": "audio_common_msgs/msg/AudioInfo",
    "/mm/question": "std_msgs/msg/String",
}
SUBSCRIBED_TYPES = (*TOPICS.values(), "mm_ros/msg/TokenEmbeddings")
KINDS = ("random", "truncated", "huge_length", "ff_run", "empty", "attachment", "semantic")
NS = 1_000_000_000
# frame ids and questions that look like paths: no node may create a file under such a name
PATHS = ("../mm_ros_fuzz", "mm_ros_fuzz/x.png", "a/b\x00c", "~/.ssh/x", "C:\\x")


def valid(  # noqa: PLR0911 - one well-formed message per type
    typename: str, stamp_ns: int, rng: random.Random | None = None
) -> dict[str, Any]:
    """A well-formed message of ``typename`` (the fields as a dict)."""
    rng = rng or random.Random(0)
    if typename == "sensor_msgs/msg/Image":
        return {
            "header": header(stamp_ns, "camera"),
            "height": 8,
            "width": 8,
            "encoding": "rgb8",
            "step": 24,
            "data": bytes(rng.randrange(256) for _ in range(192)),
        }
    if typename == "sensor_msgs/msg/CameraInfo":
        return {
            "header": header(stamp_ns, "camera"),
            "width": 8,
            "height": 8,
            "distortion_model": "plumb_bob",
            "d": [0.0] * 5,
            "k": [4.0, 0.0, 4.0, 0.0, 4.0, 4.0, 0.0, 0.0, 1.0],
        }
    if typename == "sensor_msgs/msg/Imu":
        return {
            "header": header(stamp_ns, "imu"),
            "orientation": {"w": 1.0},
            "linear_acceleration": {"z": 9.81},
        }
    if typename == "audio_common_msgs/msg/AudioDataStamped":
        return {"header": header(stamp_ns, "mic"), "audio": {"data": bytes(320)}}
    if typename == "audio_common_msgs/msg/AudioInfo":
        return {
            "channels": 1,
            "sample_rate": 16000,
            "sample_format": "S16LE",
            "coding_format": "wave",
        }
    if typename == "std_msgs/msg/String":
        return {"data": "what is on my left?"}
    if typename == "mm_ros/msg/TokenEmbeddings":
        return {
            "header": header(stamp_ns, "camera"),
            "modality": "image",
            "shape": [2, 4],
            "dtype": "float32",
            "data": bytes(32),
        }
    raise ValueError(f"no valid sample for {typename}")


def semantic(typename: str, stamp_ns: int, rng: random.Random) -> dict[str, Any]:
    """Valid CDR, absurd content."""
    message = valid(typename, stamp_ns, rng)
    far = rng.choice([2**31 - 1, -(2**31), 0, stamp_ns // NS + 10**6, stamp_ns // NS - 10**6])
    if "header" in message and rng.random() < 0.3:
        message["header"]["stamp"]["sec"] = far  # far in the future or the past
        return message
    if "header" in message and rng.random() < 0.1:  # names no node may write a file under
        message["header"]["frame_id"] = rng.choice(PATHS)
        return message
    if typename == "sensor_msgs/msg/Image":
        message.update(
            rng.choice(
                [
                    {"encoding": rng.choice(["bayer_grbg8", "", "rgb9", "32FC7"])},
                    {"step": rng.choice([0, 23, 25, 2**32 - 1])},
                    {"width": 0, "height": 0, "step": 0, "data": b""},
                    {"width": 20000, "height": 20000, "step": 60000},
                    {"data": message["data"][: rng.randrange(192)]},
                    {"is_bigendian": 1, "encoding": "mono16", "step": 16},
                ]
            )
        )
    elif typename == "sensor_msgs/msg/CameraInfo":
        message.update(
            rng.choice(
                [
                    {"k": [float("nan")] * 9},
                    {"width": 0},
                    {"distortion_model": "fisheye-ish"},
                    {"d": [float("inf")] * 5},
                ]
            )
        )
    elif typename == "sensor_msgs/msg/Imu":
        bad = rng.choice([float("nan"), float("inf"), -float("inf"), 1e308])
        field = rng.choice(["orientation", "angular_velocity", "linear_acceleration"])
        message[field] = {
            "x": bad,
            "y": 0.0,
            "z": 0.0,
            **({"w": 1.0} if field == "orientation" else {}),
        }
    elif typename == "audio_common_msgs/msg/AudioDataStamped":
        message["audio"]["data"] = rng.choice([b"", b"\x01", bytes(rng.randrange(1, 64) * 2 + 1)])
    elif typename == "audio_common_msgs/msg/AudioInfo":
        message.update(
            rng.choice(
                [
                    {"channels": 0},
                    {"sample_rate": 0},
                    {"sample_format": "bogus"},
                    {"coding_format": "mp3"},
                ]
            )
        )
    elif typename == "std_msgs/msg/String":
        message["data"] = rng.choice(
            ["", "[dance] hi", "\u202e\u0000\U0001f916 ?", "x" * 100_000, "[grounding]", *PATHS]
        )
    return message


class Fuzzer:
    """Seeded source of malformed samples (see the module docstring)."""

    def __init__(self, store: TypeStore, seed: int) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self._gid = bytes(self.rng.randrange(256) for _ in range(naming.GID_SIZE))
        self._sequence = 0

    def attachment(self) -> bytes:
        self._sequence += 1
        return naming.pack_attachment(self._sequence, time.time_ns(), self._gid)

    def _cdr(self, typename: str, fields: dict[str, Any]) -> bytes:
        return bytes(self.store.serialize(from_dict(self.store, typename, fields), typename))

    def malformed(self, typename: str, kind: str | None = None) -> tuple[bytes, bytes | None]:
        """One malformed sample of ``kind`` (random when None): ``(payload, attachment)``."""
        rng = self.rng
        kind = kind or rng.choice(KINDS)
        good = self._cdr(typename, valid(typename, time.time_ns(), rng))
        attachment: bytes | None = self.attachment()
        if kind == "random":
            payload = b"\x00\x01\x00\x00" + rng.randbytes(rng.randrange(0, 2048))
        elif kind == "truncated":
            payload = good[: rng.randrange(0, len(good))]
        elif kind == "huge_length":
            words = max(1, (len(good) - 4) // 4)
            at = 4 + 4 * rng.randrange(words)
            value = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0x10000000, len(good) * 1000])
            payload = good[:at] + value.to_bytes(4, "little") + good[at + 4 :]
        elif kind == "ff_run":
            payload = b"\xff" * rng.randrange(1, 4096)
        elif kind == "empty":
            payload = b""
        elif kind == "attachment":
            payload = good
            attachment = rng.choice([None, b"", rng.randbytes(rng.randrange(1, 64))])
            if attachment is not None and len(attachment) == naming.ATTACHMENT_SIZE:
                attachment = attachment[:-1]
        elif kind == "semantic":
            payload = self._cdr(typename, semantic(typename, time.time_ns(), rng))
        else:
            raise ValueError(f"unknown fuzz kind {kind!r}; expected one of {KINDS}")
        return payload, attachment


class Sender:
    """Puts raw samples on the topics' keys with a Zenoh session of its own."""

    def __init__(self, endpoint: str, store: TypeStore, domain: int = 0) -> None:
        import json

        import zenoh

        config = zenoh.Config()
        for key, value in {
            "mode": "client",
            "connect/endpoints": [endpoint],
            "scouting/multicast/enabled": False,
        }.items():
            config.insert_json5(key, json.dumps(value))
        self.session = zenoh.open(config)
        self.store = store
        self.domain = domain
        self._publishers: dict[str, Any] = {}

    def key(self, topic: str, typename: str) -> str:
        full = self.store.resolve(typename)
        return naming.data_key(self.domain, topic, full, self.store.hash(full))

    def put(self, topic: str, typename: str, payload: bytes, attachment: bytes | None) -> None:
        import zenoh

        key = self.key(topic, typename)
        if key not in self._publishers:
            self._publishers[key] = self.session.declare_publisher(
                key, congestion_control=zenoh.CongestionControl.BLOCK
            )
        if attachment is None:
            self._publishers[key].put(payload)
        else:
            self._publishers[key].put(payload, attachment=attachment)

    def close(self) -> None:
        for publisher in self._publishers.values():
            publisher.undeclare()
        self.session.close()
