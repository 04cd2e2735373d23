"""An independent walker over CDR bytes: which bytes are alignment padding.

ROS 2's Fast CDR leaves padding uninitialised, so bytes recorded or serialized by real ROS carry
garbage there. Tests compare every data byte exactly and skip only the positions listed here.
"""

from __future__ import annotations

import struct

from rosbags.interfaces import Nodetype

SIZES = {
    "bool": 1, "byte": 1, "char": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2,
    "int32": 4, "uint32": 4, "float32": 4, "int64": 8, "uint64": 8, "float64": 8,
}  # fmt: skip
HEADER = 4


class _Walk:
    def __init__(self, fielddefs, data: bytes) -> None:
        self.defs = fielddefs
        self.data = data
        self.pos = HEADER
        self.padding: set[int] = set()

    def align(self, size: int) -> None:
        pad = (-(self.pos - HEADER)) % size
        self.padding.update(range(self.pos, self.pos + pad))
        self.pos += pad

    def u32(self) -> int:
        self.align(4)
        (value,) = struct.unpack_from("<I", self.data, self.pos)
        self.pos += 4
        return int(value)

    def base(self, name: str, count: int = 1) -> None:
        if name == "string":
            for _ in range(count):
                length = self.u32()  # read first: `pos += u32()` would use the old pos
                self.pos += length
            return
        size = SIZES[name]
        if count:
            self.align(size)
        self.pos += size * count

    def element(self, desc, count: int) -> None:
        if desc[0] == Nodetype.BASE:
            self.base(desc[1][0], count)
        else:
            for _ in range(count):
                self.struct(desc[1])

    def struct(self, typename: str) -> None:
        for _, desc in self.defs[typename][1]:
            if desc[0] == Nodetype.ARRAY:
                self.element(desc[1][0], desc[1][1])
            elif desc[0] == Nodetype.SEQUENCE:
                self.element(desc[1][0], self.u32())
            else:
                self.element(desc, 1)


def padding_positions(fielddefs, typename: str, data: bytes) -> set[int]:
    """Return the byte offsets (header included) that are alignment padding in ``data``."""
    walk = _Walk(fielddefs, data)
    walk.struct(typename)
    tail = len(data) - walk.pos
    assert 0 <= tail < 8, f"{typename}: walker ended at {walk.pos} of {len(data)} bytes"
    walk.padding.update(range(walk.pos, len(data)))
    return walk.padding


def assert_same_cdr(fielddefs, typename: str, ours: bytes, theirs: bytes) -> None:
    """Assert two CDR encodings are equal on every byte that is not alignment padding."""
    assert len(ours) == len(theirs), f"{typename}: {len(ours)} bytes != {len(theirs)}"
    skip = padding_positions(fielddefs, typename, theirs)
    assert skip == padding_positions(fielddefs, typename, ours)
    pairs = enumerate(zip(ours, theirs, strict=True))
    diff = [i for i, (a, b) in pairs if a != b and i not in skip]
    assert not diff, f"{typename}: data bytes differ at offsets {diff[:10]}"
    assert all(ours[i] == 0 for i in skip), f"{typename}: our padding is not zero"
