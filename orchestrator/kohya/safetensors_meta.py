"""Read the metadata of a .safetensors file (LoRA checkpoints carry sd-scripts' ss_*/sshs_* keys) without torch.

The format: 8 bytes little-endian header length, then a JSON header whose ``__metadata__`` holds string pairs and
whose other entries give each tensor's dtype, shape and byte range (``data_offsets``) in the data that follows. A
header is checked whole before anything trusts it: a file shorter than its header's byte ranges is truncated.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2,
               "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
_NOT_SAFETENSORS = "give a .safetensors LoRA"


def read_header(path: Path) -> dict[str, Any]:
    """The checked JSON header: every tensor entry well formed and inside the file."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) != 8:
                raise InputError(f"{path}: too short to be a safetensors file", "is the download complete?")
            (length,) = struct.unpack("<Q", prefix)
            size = path.stat().st_size
            if length > MAX_HEADER_BYTES or length > size - 8:
                raise InputError(f"{path}: not a safetensors file (bad header length)", _NOT_SAFETENSORS)
            header = handle.read(length)
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror}", "check the path and permissions") from None
    try:
        data = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: not a safetensors file (header is not JSON)", _NOT_SAFETENSORS) from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a safetensors file", _NOT_SAFETENSORS)
    _check_tensors(path, data, data_bytes=size - 8 - length)
    return data


def _check_tensors(path: Path, header: dict[str, Any], *, data_bytes: int) -> None:
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: not a tensor entry (dtype, shape, data_offsets)", _NOT_SAFETENSORS)
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            raise InputError(f"{where}: unknown dtype {dtype!r}", _NOT_SAFETENSORS)
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise InputError(f"{where}: shape {shape!r} is not a list of sizes", _NOT_SAFETENSORS)
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
                and offsets[0] <= offsets[1]):
            raise InputError(f"{where}: data_offsets {offsets!r} are not a byte range", _NOT_SAFETENSORS)
        if offsets[1] > data_bytes:
            raise InputError(f"{path}: shorter than its header says (tensor {name!r} ends at byte {offsets[1]} of "
                             f"the data; the file holds {data_bytes})",
                             "the file is truncated: download or copy it again")
        count = 1
        for dimension in shape:
            count *= dimension
        if offsets[1] - offsets[0] != count * DTYPE_BYTES[dtype]:
            raise InputError(f"{where}: {offsets[1] - offsets[0]} bytes for shape {shape} of {dtype}",
                             _NOT_SAFETENSORS)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (empty when there are none)."""
    metadata = read_header(path).get("__metadata__")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InputError(f"{path}: __metadata__ is a {_json_type(metadata)}, not a table of strings",
                         "the file is damaged or was not written by a safetensors library")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise InputError(f"{path}: __metadata__ {key!r} is a {_json_type(value)}, not a string",
                             "the file is damaged or was not written by a safetensors library")
    return dict(metadata)


def _json_type(value: Any) -> str:
    return {dict: "table", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__)


def decoded_metadata(metadata: dict[str, str]) -> dict[str, Any]:
    """sd-scripts stores some values as JSON strings (tag frequency, dataset dirs, network args): decode those."""
    decoded: dict[str, Any] = {}
    for key, value in metadata.items():
        if value[:1] in ("{", "[") or key in ("ss_network_args",):
            try:
                decoded[key] = json.loads(value)
                continue
            except json.JSONDecodeError:
                pass
        decoded[key] = value
    return decoded


def tensor_count(path: Path) -> int:
    return sum(1 for key in read_header(path) if key != "__metadata__")
