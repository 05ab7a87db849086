"""``sensor_msgs/Image`` read straight from its serialized CDR bytes, without deserializing it.

The mapping node subscribes to images raw (``raw=True``): a callback then costs a
bytes copy and this parse of the header fields (microseconds), and the pixel data stays
where DDS put it. Frames the worker never maps (superseded by newer ones, unmatched by
the synchroniser) are never converted. ``RawImage`` has the fields of the message that
``core.image_codec`` reads, with ``data`` a zero-copy view into the serialized bytes.

Wire format (OMG CDR as ROS 2's RMWs write it): a 4-byte encapsulation header (byte 1:
0 = big endian, 1 = little endian), then the fields in order, each aligned to its size
relative to the end of the encapsulation header::

    header.stamp.sec int32, header.stamp.nanosec uint32, header.frame_id string,
    height uint32, width uint32, encoding string, is_bigendian uint8, step uint32,
    data sequence<uint8>

Strings are a uint32 length (including the terminating NUL) and the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

ENCAPSULATION_BYTES = 4
MAX_STRING_BYTES = 4096
"""Longer frame_id / encoding strings are taken for corrupt data."""


class RawImageError(ValueError):
    """Serialized bytes that are not a well-formed ``sensor_msgs/Image``."""


@dataclass(frozen=True)
class RawImage:
    """A serialized image's fields; ``data`` (uint8 view, no copy) is what image_codec decodes."""

    stamp_ns: int
    frame_id: str
    height: int
    width: int
    encoding: str
    is_bigendian: bool
    step: int
    data: np.ndarray

    @property
    def pixels(self) -> int:
        return self.height * self.width


class _Reader:
    def __init__(self, raw: bytes | memoryview):
        if len(raw) < ENCAPSULATION_BYTES:
            raise RawImageError(f"{len(raw)} bytes are too short for a serialized message")
        kind = raw[1]
        if raw[0] != 0 or kind not in (0, 1):
            raise RawImageError(f"unsupported CDR encapsulation {bytes(raw[:2]).hex()} (expected 0000 or 0001)")
        self.raw = raw
        self.order = "<" if kind == 1 else ">"
        self.offset = ENCAPSULATION_BYTES

    def _align(self, size: int) -> None:
        rest = (self.offset - ENCAPSULATION_BYTES) % size
        if rest:
            self.offset += size - rest

    def _take(self, size: int) -> int:
        start = self.offset
        if start + size > len(self.raw):
            raise RawImageError(f"message truncated at byte {start} of {len(self.raw)}")
        self.offset += size
        return start

    def uint32(self) -> int:
        self._align(4)
        return struct.unpack_from(self.order + "I", self.raw, self._take(4))[0]

    def int32(self) -> int:
        self._align(4)
        return struct.unpack_from(self.order + "i", self.raw, self._take(4))[0]

    def uint8(self) -> int:
        return self.raw[self._take(1)]

    def string(self, what: str) -> str:
        length = self.uint32()
        if length > MAX_STRING_BYTES:
            raise RawImageError(f"{what} string of {length} bytes")
        start = self._take(length)
        text = bytes(self.raw[start:start + length])
        if length and text[-1] == 0:  # the NUL terminator
            text = text[:-1]
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RawImageError(f"{what} is not UTF-8: {exc}") from exc


def parse_raw_image(raw: bytes | memoryview) -> RawImage:
    """Parse serialized ``sensor_msgs/Image`` bytes; ``data`` views ``raw`` (keep ``raw`` alive).

    Raises RawImageError for another encapsulation, truncated data or absurd string
    lengths. Does not check that the data matches height x step (image_codec does).
    """
    reader = _Reader(raw)
    sec = reader.int32()
    nanosec = reader.uint32()
    frame_id = reader.string("frame_id")
    height = reader.uint32()
    width = reader.uint32()
    encoding = reader.string("encoding")
    is_bigendian = bool(reader.uint8())
    step = reader.uint32()
    length = reader.uint32()
    start = reader._take(length)
    data = np.frombuffer(raw, dtype=np.uint8, count=length, offset=start)
    return RawImage(sec * 1_000_000_000 + nanosec, frame_id, height, width, encoding, is_bigendian, step, data)
