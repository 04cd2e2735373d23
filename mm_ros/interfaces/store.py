"""A type store per ROS distro: standard types, carried definitions and mm_ros's own.

No ROS install is needed: standard message types come from ``rosbags``' stores; vision_msgs 4.x,
both ``audio_common_msgs`` layouts, the services and actions we use and ``mm_ros``'s own
``msg/``/``action/`` are parsed from the definition files shipped in this package.
"""

from __future__ import annotations

import difflib
import struct
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.base import TypesysError

from mm_ros.core.audio import AudioLayout  # which audio_common_msgs is on the wire
from mm_ros.core.errors import CdrError, ConfigError, DefinitionError, UnknownTypeError
from mm_ros.interfaces import hashing
from mm_ros.interfaces.idl import (
    interface_kind,
    normalize_name,
    parse_interface,
    parse_schema,
    referenced_names,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rosbags.interfaces.typing import Typesdict
    from rosbags.typesys.store import Typestore

DISTROS = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY, "kilted": Stores.ROS2_KILTED}
DEFAULT_DISTRO = "jazzy"

_DEFINITIONS = Path(__file__).resolve().parent / "definitions"


_AUDIO_DIRS = {
    AudioLayout.ROS_DRIVERS: "audio_common_msgs",
    AudioLayout.MGONZS13: "audio_common_msgs_mgonzs13",
}


def own_definition_root() -> Path:
    """Folder holding ``msg/`` and ``action/`` of mm_ros itself.

    Wheels copy them into ``definitions/mm_ros``; a source checkout or an editable install
    reads the repository's top-level folders; a colcon install has them under ``share/``.
    """
    installed = _DEFINITIONS / "mm_ros"
    if installed.is_dir():
        return installed
    package = Path(__file__).resolve().parents[1]  # .../mm_ros
    candidates = [package.parent]  # source checkout: <repo>/msg next to <repo>/mm_ros
    if len(package.parents) > 3:  # noqa: PLR2004 - colcon: <prefix>/lib/pythonX.Y/site-packages
        candidates.append(package.parents[3] / "share" / "mm_ros")
    for candidate in candidates:
        if (candidate / "msg" / "Answer.msg").is_file():
            return candidate
    msg = f"mm_ros's own msg/ and action/ folders not found next to {package}"
    raise DefinitionError(msg)


@dataclass(frozen=True)
class Definition:
    """One interface file: its full type name and text."""

    typename: str  # pkg/msg|srv|action/Name
    text: str
    path: Path


def _definition_files(audio: AudioLayout) -> Iterator[Definition]:
    roots: list[tuple[str, Path]] = []
    for folder in sorted(_DEFINITIONS.iterdir()):
        if not folder.is_dir() or folder.name == "mm_ros":
            continue
        if folder.name.startswith("audio_common_msgs"):
            if folder.name != _AUDIO_DIRS[audio]:
                continue
            roots.append(("audio_common_msgs", folder))
        else:
            roots.append((folder.name, folder))
    roots.append(("mm_ros", own_definition_root()))
    for pkg, root in roots:
        for kind in ("msg", "srv", "action"):
            for path in sorted((root / kind).glob(f"*.{kind}")):
                text = path.read_text(encoding="utf-8")
                yield Definition(f"{pkg}/{kind}/{path.stem}", text, path)


@dataclass
class InterfaceStore:
    """Every interface type mm_ros speaks, for one distro and one audio layout.

    ``hash`` is right for messages, services and actions (REP 2011); ``serialize`` and
    ``deserialize`` produce and read the CDR bytes ROS 2 puts on the wire.
    """

    distro: str = DEFAULT_DISTRO
    audio_layout: AudioLayout = AudioLayout.ROS_DRIVERS
    _store: Typestore = field(init=False, repr=False)
    _texts: dict[str, str] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.distro not in DISTROS:
            msg = f"ros_distro must be one of {sorted(DISTROS)}, found {self.distro!r}"
            raise ConfigError(msg)
        self.audio_layout = AudioLayout(self.audio_layout)
        self._store = get_typestore(DISTROS[self.distro])
        carried: Typesdict = {}
        for definition in _definition_files(self.audio_layout):
            carried.update(parse_interface(definition.text, definition.typename))
            self._texts[definition.typename] = definition.text
        self._check_references(carried)
        try:
            self._store.register(
                {k: v for k, v in carried.items() if k not in self._store.fielddefs}
            )
        except TypesysError as err:
            msg = f"carried definitions conflict with the {self.distro} store: {err}"
            raise DefinitionError(msg) from err

    def _check_references(self, new: Typesdict) -> None:
        for typename, (_, fields) in new.items():
            for fname, ref in referenced_names(fields):
                if ref not in new and ref not in self._store.fielddefs:
                    msg = (
                        f"{typename}: field {fname!r} has type {ref!r}, which is not "
                        f"defined for {self.distro}"
                    )
                    raise DefinitionError(msg)

    def add_definition(self, text: str, typename: str) -> list[str]:
        """Parse and register one more ``.msg``/``.srv``/``.action``; return its type names."""
        interface_kind(typename)
        added = self._add(parse_interface(text, typename), typename)
        self._texts.setdefault(typename, text)
        return added

    def add_schema(self, text: str, typename: str) -> list[str]:
        """Register the types of a bag's embedded ``ros2msg`` schema that are not known yet."""
        return self._add(parse_schema(text, typename), typename)

    def schema_hash(self, text: str, typename: str) -> str:
        """RIHS01 of ``typename`` as defined by an embedded schema (store types fill gaps)."""
        types = dict(self._store.fielddefs)
        types.update(parse_schema(text, typename))
        return hashing.rihs01(types, typename)

    def _add(self, types: Typesdict, origin: str) -> list[str]:
        new = {k: v for k, v in types.items() if k not in self._store.fielddefs}
        self._check_references(new)
        try:
            self._store.register(new)
        except TypesysError as err:
            raise DefinitionError(f"{origin}: {err}") from err
        return sorted(new)

    # -- names -------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every type name a user can ask for: messages, services and actions."""
        return sorted(set(self._store.fielddefs) | set(self._texts))

    def resolve(self, name: str) -> str:
        """Return the full type name, or raise ``UnknownTypeError`` with close matches."""
        full = normalize_name(name)
        if full in self._store.fielddefs:
            return full
        known = self.names()
        close = difflib.get_close_matches(full, known, n=3, cutoff=0.6)
        if not close:
            tail = full.rsplit("/", 1)[-1].lower()
            close = [k for k in known if k.rsplit("/", 1)[-1].lower() == tail][:3]
        raise UnknownTypeError(name, known, close)

    # -- definitions and hashes --------------------------------------------------------

    def definition(self, name: str) -> str:
        """Return the definition text: the file as written, or one generated from rosbags."""
        full = self.resolve(name)
        if full in self._texts:
            return self._texts[full]
        text, _ = self._store.gendefhash(full, {}, ros_version=2)
        return text

    def fielddefs(self, name: str) -> Any:
        """Return the rosbags field definitions ``(constants, fields)`` of one type."""
        return self._store.fielddefs[self.resolve(name)]

    def hash(self, name: str) -> str:
        """RIHS01 hash as it appears in rmw_zenoh keys; Humble has none."""
        full = self.resolve(name)
        if self.distro == "humble":
            return hashing.HUMBLE_PLACEHOLDER
        return hashing.rihs01(self._store.fielddefs, full)

    def type_description(self, name: str) -> dict[str, Any]:
        """REP 2011 type description of one type (what ``hash`` digests)."""
        return hashing.type_description(self._store.fielddefs, self.resolve(name))

    # -- messages and CDR --------------------------------------------------------------

    def msg(self, name: str) -> type:
        """Return the message class (a dataclass) of one type."""
        return self._store.types[self.resolve(name)]

    def serialize(self, message: object, name: str) -> bytes | bytearray:
        """Encode a message as little-endian CDR with its 4-byte encapsulation header.

        Returns the encoder's own buffer (no copy: a 1080p frame is 6 MB).
        """
        full = self.resolve(name)
        try:
            view = self._store.serialize_cdr(message, full)
            return view.obj if isinstance(view.obj, bytearray) else bytes(view)
        except (AttributeError, TypeError, ValueError, OverflowError) as err:
            msg = f"cannot encode {type(message).__name__} as {full}: {err}"
            raise CdrError(msg) from err

    def deserialize(self, data: bytes | memoryview, name: str) -> Any:
        """Decode CDR bytes (encapsulation header included) into a message of ``name``."""
        full = self.resolve(name)
        size = len(data)
        if size < 4:  # noqa: PLR2004 - the encapsulation header
            msg = f"CDR for {full}: expected at least the 4-byte header, found {size} bytes"
            raise CdrError(msg)
        if bytes(data[:2]) not in (b"\x00\x01", b"\x00\x00"):
            msg = (
                f"CDR for {full}: expected encapsulation 00 01 (LE) or 00 00 (BE), "
                f"found {bytes(data[:2]).hex(' ')}"
            )
            raise CdrError(msg)
        minimum = self._store.get_msgdef(full).size_cdr
        if size - 4 < minimum:
            msg = f"CDR for {full}: expected at least {minimum + 4} bytes, found {size}"
            raise CdrError(msg)
        try:  # a memoryview: rosbags slices off the header, which would copy bytes
            return self._store.deserialize_cdr(memoryview(data), full)
        except (SerdeError, IndexError, ValueError, AssertionError, struct.error) as err:
            msg = f"CDR for {full} is malformed or truncated ({size} bytes): {err}"
            raise CdrError(msg) from err


def get_store(
    distro: str = DEFAULT_DISTRO, audio_layout: AudioLayout | str = AudioLayout.ROS_DRIVERS
) -> InterfaceStore:
    """Return the shared store for one distro and audio layout (built once per process)."""
    return _shared_store(distro, AudioLayout(audio_layout).value)


@cache
def _shared_store(distro: str, audio_layout: str) -> InterfaceStore:
    return InterfaceStore(distro, AudioLayout(audio_layout))
