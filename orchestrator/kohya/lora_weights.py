"""How alike the weights of two LoRA checkpoints are: a cosine similarity per LoRA module, read with safetensors'
numpy API (no torch).

sd-scripts stores each module as ``<module>.lora_down.weight`` (rank x in), ``<module>.lora_up.weight``
(out x rank) and ``<module>.alpha``. The module's effect on the base weights is the product up @ down, so that is
what is compared: two trainings whose factors differ by a rotation inside the rank are the same LoRA. The product is
never formed: <U1 D1, U2 D2> = sum((U1^T U2) * (D1 D2^T)), rank x rank matrices. Other tensors (other network
kinds) are compared as they are.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrator.kohya.safetensors_meta import read_header

_DOWN, _UP, _ALPHA = ".lora_down.weight", ".lora_up.weight", ".alpha"


@dataclass(frozen=True)
class ModuleSimilarity:
    module: str
    cosine: float


@dataclass(frozen=True)
class WeightComparison:
    modules: list[ModuleSimilarity]
    only_in_first: list[str] = field(default_factory=list)
    only_in_second: list[str] = field(default_factory=list)
    shape_differs: list[str] = field(default_factory=list)

    @property
    def min_cosine(self) -> float | None:
        return min((m.cosine for m in self.modules), default=None)

    @property
    def mean_cosine(self) -> float | None:
        return float(np.mean([m.cosine for m in self.modules])) if self.modules else None

    @property
    def same_modules(self) -> bool:
        return not (self.only_in_first or self.only_in_second or self.shape_differs)


def read_tensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a (checked) safetensors file as float64. bfloat16, which numpy lacks, is widened by hand."""
    from safetensors import safe_open  # here: only verify-repro needs it

    path = Path(path)
    header = read_header(path)
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
    data_start = 8 + length
    tensors: dict[str, np.ndarray] = {}
    with safe_open(str(path), framework="numpy") as opened:
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            if entry["dtype"] == "BF16":
                begin, end = entry["data_offsets"]
                raw = np.fromfile(path, dtype="<u2", count=(end - begin) // 2, offset=data_start + begin)
                widened = (raw.astype(np.uint32) << 16).view(np.float32)
                tensors[name] = widened.reshape(entry["shape"]).astype(np.float64)
            else:
                tensors[name] = np.asarray(opened.get_tensor(name), dtype=np.float64)
    return tensors


def _factors(tensors: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, ...]]:
    """module -> (up, down) as matrices for LoRA modules, (tensor,) for anything else; alphas left out (a cosine
    does not see a scale)."""
    modules: dict[str, tuple[np.ndarray, ...]] = {}
    for name, tensor in tensors.items():
        if name.endswith(_DOWN) and name[: -len(_DOWN)] + _UP in tensors:
            module = name[: -len(_DOWN)]
            up = tensors[module + _UP]
            modules[module] = (up.reshape(up.shape[0], -1), tensor.reshape(tensor.shape[0], -1))
        elif name.endswith(_UP) and name[: -len(_UP)] + _DOWN in tensors:
            continue
        elif name.endswith(_ALPHA) and name[: -len(_ALPHA)] + _DOWN in tensors:
            continue
        else:
            modules[name] = (tensor.reshape(-1),)
    return modules


def _inner(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> float:
    if len(a) == 1:
        return float(np.dot(a[0], b[0]))
    (up_a, down_a), (up_b, down_b) = a, b
    return float(np.sum((up_a.T @ up_b) * (down_a @ down_b.T)))


def _shape(factors: tuple[np.ndarray, ...]) -> tuple[int, ...]:
    if len(factors) == 1:
        return factors[0].shape
    up, down = factors
    return (up.shape[0], down.shape[1])  # the product's shape (two ranks can still be compared)


def cosine(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> float:
    """Cosine of two modules' weights; two all-zero modules are identical (1), one all-zero is unlike anything (0)."""
    norm_a, norm_b = _inner(a, a), _inner(b, b)
    if norm_a <= 0 and norm_b <= 0:
        return 1.0
    if norm_a <= 0 or norm_b <= 0:
        return 0.0
    return max(-1.0, min(1.0, _inner(a, b) / float(np.sqrt(norm_a) * np.sqrt(norm_b))))


def compare_weights(first: Path, second: Path) -> WeightComparison:
    a, b = _factors(read_tensors(first)), _factors(read_tensors(second))
    modules, shape_differs = [], []
    for module in sorted(set(a) & set(b)):
        if len(a[module]) != len(b[module]) or _shape(a[module]) != _shape(b[module]):
            shape_differs.append(module)
            continue
        modules.append(ModuleSimilarity(module, cosine(a[module], b[module])))
    return WeightComparison(modules=modules, only_in_first=sorted(set(a) - set(b)),
                            only_in_second=sorted(set(b) - set(a)), shape_differs=shape_differs)
