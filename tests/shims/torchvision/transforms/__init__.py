"""TEST SHIM for ``torchvision.transforms`` (see the package docstring).

Stands in for torchvision only on the sd-scripts trainer's PYTHONPATH on the
CPU-only development machine. Implements Compose, ToTensor, Normalize and a
small ``functional`` module with torch / numpy / PIL.
"""

from . import functional
from .functional import InterpolationMode


class Compose:
    """Apply a list of callables in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{self.__class__.__name__}({inner}\n)"


class ToTensor:
    """PIL image / HxWxC ndarray -> float CxHxW tensor (uint8 scaled to [0, 1])."""

    def __call__(self, pic):
        return functional.to_tensor(pic)

    def __repr__(self):
        return f"{self.__class__.__name__}()"


class Normalize:
    """(tensor - mean) / std, per channel; mean/std broadcast like torchvision."""

    def __init__(self, mean, std, inplace=False):
        self.mean = mean
        self.std = std
        self.inplace = inplace

    def __call__(self, tensor):
        return functional.normalize(tensor, self.mean, self.std, self.inplace)

    def __repr__(self):
        return f"{self.__class__.__name__}(mean={self.mean}, std={self.std})"


class Lambda:
    def __init__(self, lambd):
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)


__all__ = ["Compose", "ToTensor", "Normalize", "Lambda", "InterpolationMode", "functional"]
