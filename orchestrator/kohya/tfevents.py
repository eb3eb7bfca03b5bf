"""Read scalar series from TensorBoard event files without TensorFlow, TensorBoard or protobuf installed.

sd-scripts logs through accelerate's TensorBoard tracker (torch.utils.tensorboard), which writes TFRecord files of
``Event`` protobufs: each scalar is a ``Summary.Value`` with a ``tag`` and a ``simple_value`` (or, in newer writers,
a one-element float tensor). Only the fields needed for scalars are decoded; records with a bad CRC are skipped
(a file still being written may end in a partial record).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Scalar:
    tag: str
    step: int
    value: float
    wall_time: float


_CRC_TABLE: list[int] = []


def _crc32c(data: bytes) -> int:
    if not _CRC_TABLE:
        for i in range(256):
            crc = i
            for _ in range(8):
                crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
            _CRC_TABLE.append(crc)
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _records(path: Path, verify: bool) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while True:
            header = handle.read(12)
            if len(header) < 12:
                return
            length, length_crc = struct.unpack("<QI", header)
            if verify and _masked_crc(header[:8]) != length_crc:
                return  # corrupt or partial: nothing after it can be trusted
            data = handle.read(length)
            footer = handle.read(4)
            if len(data) < length or len(footer) < 4:
                return
            if verify and _masked_crc(data) != struct.unpack("<I", footer)[0]:
                continue
            yield data


def _fields(buffer: bytes) -> Iterator[tuple[int, int, object]]:
    """Yield (field number, wire type, value) of a protobuf message."""
    position, end = 0, len(buffer)
    while position < end:
        key, position = _varint(buffer, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(buffer, position)
        elif wire == 1:
            value = buffer[position:position + 8]
            position += 8
        elif wire == 2:
            length, position = _varint(buffer, position)
            value = buffer[position:position + length]
            position += length
        elif wire == 5:
            value = buffer[position:position + 4]
            position += 4
        else:
            return  # groups (3/4) are not used by TensorBoard events
        yield number, wire, value


def _varint(buffer: bytes, position: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _tensor_float(tensor: bytes) -> float | None:
    # TensorProto: dtype=1 (DT_FLOAT=1, DT_DOUBLE=2), tensor_content=4, float_val=5 (packed), double_val=6
    dtype, content, floats, doubles = None, None, [], []
    for number, wire, value in _fields(tensor):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 4 and wire == 2:
            content = value
        elif number == 5:
            packed = value if wire == 2 else value
            floats += list(struct.unpack(f"<{len(packed) // 4}f", packed))
        elif number == 6:
            doubles += list(struct.unpack(f"<{len(value) // 8}d", value))
    if floats:
        return floats[0]
    if doubles:
        return doubles[0]
    if content:
        if dtype == 2 and len(content) >= 8:
            return struct.unpack("<d", content[:8])[0]
        if len(content) >= 4:
            return struct.unpack("<f", content[:4])[0]
    return None


def read_scalars(path: Path, *, verify: bool = True) -> Iterator[Scalar]:
    """Every scalar in one event file, in file order."""
    for record in _records(Path(path), verify):
        wall_time, step, summary = 0.0, 0, None
        for number, wire, value in _fields(record):
            if number == 1 and wire == 1:
                wall_time = struct.unpack("<d", value)[0]
            elif number == 2 and wire == 0:
                step = value
            elif number == 5 and wire == 2:
                summary = value
        if summary is None:
            continue
        for number, wire, value in _fields(summary):
            if number != 1 or wire != 2:
                continue
            tag, scalar = None, None
            for inner_number, inner_wire, inner in _fields(value):
                if inner_number == 1 and inner_wire == 2:
                    tag = inner.decode("utf-8", "replace")
                elif inner_number == 2 and inner_wire == 5:
                    scalar = struct.unpack("<f", inner)[0]
                elif inner_number == 8 and inner_wire == 2:
                    scalar = _tensor_float(inner)
            if tag is not None and scalar is not None:
                yield Scalar(tag=tag, step=int(step), value=float(scalar), wall_time=wall_time)


def read_log_dir(log_dir: Path) -> list[Scalar]:
    """All scalars under a logging_dir (sd-scripts nests a timestamped folder per run), sorted by step."""
    files = sorted(Path(log_dir).rglob("events.out.tfevents.*"))
    scalars = [scalar for path in files for scalar in read_scalars(path)]
    return sorted(scalars, key=lambda s: (s.step, s.wall_time, s.tag))
