"""Base-model families and the sd-scripts training script each one uses.

Shared by the spec (which family a run trains on) and kohya/ (which script's arguments apply); it imports nothing
of the project, so both can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: The training script for each base-model family.
SCRIPT_FOR_FAMILY: Mapping[str, str] = MappingProxyType({
    "sd15": "train_network.py",
    "sdxl": "sdxl_train_network.py",
})
FAMILIES: tuple[str, ...] = tuple(SCRIPT_FOR_FAMILY)
