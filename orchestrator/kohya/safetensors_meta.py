"""Read the metadata of a .safetensors file (LoRA checkpoints carry sd-scripts' ss_*/sshs_* keys) without torch.

The format: 8 bytes little-endian header length, then a JSON header whose ``__metadata__`` holds string pairs.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit


def read_header(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) != 8:
                raise InputError(f"{path}: too short to be a safetensors file", "is the download complete?")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or length > path.stat().st_size - 8:
                raise InputError(f"{path}: not a safetensors file (bad header length)", "give a .safetensors LoRA")
            header = handle.read(length)
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror}", "check the path and permissions") from None
    try:
        data = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: not a safetensors file (header is not JSON)", "give a .safetensors LoRA") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a safetensors file", "give a .safetensors LoRA")
    return data


def read_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (empty when there are none)."""
    metadata = read_header(path).get("__metadata__") or {}
    return {str(k): str(v) for k, v in metadata.items()}


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
