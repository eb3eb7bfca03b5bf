"""Identify a base model by content: a single checkpoint file or a diffusers folder.

Hashing gigabytes on every launch would be slow, so file hashes are cached by (path, size, mtime) in the data
directory; a changed file is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator.artifacts.base import sha256_file
from orchestrator.config import data_dir
from orchestrator.errors import InputError


@dataclass(frozen=True)
class BaseModelInfo:
    path: str
    sha256: str
    size_bytes: int
    kind: str  # "file" or "diffusers"


def _cache_path() -> Path:
    return data_dir() / "cache" / "file_hashes.json"


def _load_cache() -> dict[str, list]:
    try:
        return json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict[str, list]) -> None:
    path = _cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(cache, sort_keys=True))
    os.replace(partial, path)


def cached_sha256(path: Path, cache: dict[str, list]) -> tuple[str, int]:
    stat = path.stat()
    key = str(path.resolve())
    entry = cache.get(key)
    if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
        return entry[2], stat.st_size
    digest, size = sha256_file(path)
    cache[key] = [stat.st_size, stat.st_mtime_ns, digest]
    return digest, size


def fingerprint(path: Path) -> BaseModelInfo:
    """sha256 of a checkpoint file, or of a diffusers folder's sorted (relative path, file sha256) listing."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"base model {path} does not exist", "give a .safetensors/.ckpt file or a diffusers folder")
    cache = _load_cache()
    if path.is_file():
        digest, size = cached_sha256(path, cache)
        _save_cache(cache)
        return BaseModelInfo(path=str(path.resolve()), sha256=digest, size_bytes=size, kind="file")
    if not (path / "model_index.json").is_file() and not (path / "unet").is_dir():
        raise InputError(f"{path} is neither a checkpoint file nor a diffusers folder (no model_index.json)",
                         "point base_model.path at the model file or the folder holding model_index.json")
    listing = hashlib.sha256()
    total = 0
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest, size = cached_sha256(file, cache)
        total += size
        listing.update(f"{file.relative_to(path).as_posix()}\0{digest}\n".encode())
    _save_cache(cache)
    return BaseModelInfo(path=str(path.resolve()), sha256=listing.hexdigest(), size_bytes=total, kind="diffusers")
