"""TEST SHIM for ``torchvision.transforms.functional`` (see the package docstring).

Only the handful of functions sd-scripts touches, implemented with
torch / numpy / PIL. Semantics follow torchvision for the common cases.
"""

import enum

import numpy as np
import torch
import torch.nn.functional as F

try:  # PIL is a hard dependency of sd-scripts, but keep the import soft
    from PIL import Image
except ImportError:  # pragma: no cover
    Image = None


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _is_pil(img):
    return Image is not None and isinstance(img, Image.Image)


def pil_to_tensor(pic):
    """PIL image -> uint8 (or native dtype) CxHxW tensor, no scaling."""
    if not _is_pil(pic):
        raise TypeError(f"pic should be PIL Image. Got {type(pic)}")
    arr = np.array(pic, copy=True)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def to_tensor(pic):
    """PIL image or HxW(xC) ndarray -> float CxHxW tensor; uint8 input scaled to [0, 1]."""
    if _is_pil(pic):
        if pic.mode == "1":
            arr = np.array(pic, dtype=np.uint8) * 255
        else:
            arr = np.array(pic, copy=True)
    elif isinstance(pic, np.ndarray):
        arr = pic
    else:
        raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()
    if t.dtype == torch.uint8:
        return t.to(dtype=torch.get_default_dtype()).div(255)
    return t


def normalize(tensor, mean, std, inplace=False):
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor should be a torch tensor. Got {type(tensor)}")
    if not tensor.is_floating_point():
        raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
    if not inplace:
        tensor = tensor.clone()
    dtype, device = tensor.dtype, tensor.device
    mean_t = torch.as_tensor(mean, dtype=dtype, device=device)
    std_t = torch.as_tensor(std, dtype=dtype, device=device)
    if (std_t == 0).any():
        raise ValueError(f"std evaluated to zero after conversion to {dtype}, leading to division by zero.")
    if mean_t.ndim == 1:
        mean_t = mean_t.view(-1, 1, 1)
    if std_t.ndim == 1:
        std_t = std_t.view(-1, 1, 1)
    return tensor.sub_(mean_t).div_(std_t)


def _gaussian_kernel1d(ksize, sigma, dtype, device):
    half = (ksize - 1) * 0.5
    x = torch.linspace(-half, half, steps=ksize, dtype=dtype, device=device)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    return pdf / pdf.sum()


def gaussian_blur(img, kernel_size, sigma=None):
    """Gaussian blur of a (..., C, H, W) float tensor with reflect padding."""
    if isinstance(kernel_size, int):
        kernel_size = [kernel_size, kernel_size]
    kernel_size = list(kernel_size)
    if len(kernel_size) == 1:
        kernel_size = [kernel_size[0], kernel_size[0]]
    if sigma is None:
        sigma = [k * 0.15 + 0.35 for k in kernel_size]
    elif isinstance(sigma, (int, float)):
        sigma = [float(sigma), float(sigma)]
    sigma = list(sigma)
    if len(sigma) == 1:
        sigma = [sigma[0], sigma[0]]

    orig_shape = img.shape
    orig_dtype = img.dtype
    x = img if img.is_floating_point() else img.float()
    x = x.reshape(-1, orig_shape[-3], orig_shape[-2], orig_shape[-1])
    c = x.shape[1]
    kx = _gaussian_kernel1d(kernel_size[0], sigma[0], x.dtype, x.device)
    ky = _gaussian_kernel1d(kernel_size[1], sigma[1], x.dtype, x.device)
    kernel2d = torch.mm(ky[:, None], kx[None, :]).expand(c, 1, kernel_size[1], kernel_size[0])
    pad = [kernel_size[0] // 2, kernel_size[0] // 2, kernel_size[1] // 2, kernel_size[1] // 2]
    x = F.pad(x, pad, mode="reflect")
    x = F.conv2d(x, kernel2d, groups=c)
    x = x.reshape(orig_shape)
    if not orig_dtype.is_floating_point:
        x = x.round().to(orig_dtype)
    return x


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    """Resize a tensor (..., H, W) to ``size`` ([h, w]) or a PIL image."""
    if isinstance(interpolation, str):
        interpolation = InterpolationMode(interpolation)
    if _is_pil(img):
        w, h = img.size
        if isinstance(size, int):
            if w <= h:
                nw, nh = size, int(size * h / w)
            else:
                nh, nw = size, int(size * w / h)
        else:
            nh, nw = size
        pil_modes = {
            InterpolationMode.NEAREST: Image.NEAREST,
            InterpolationMode.NEAREST_EXACT: Image.NEAREST,
            InterpolationMode.BILINEAR: Image.BILINEAR,
            InterpolationMode.BICUBIC: Image.BICUBIC,
            InterpolationMode.BOX: Image.BOX,
            InterpolationMode.HAMMING: Image.HAMMING,
            InterpolationMode.LANCZOS: Image.LANCZOS,
        }
        return img.resize((nw, nh), pil_modes[interpolation])
    h, w = img.shape[-2:]
    if isinstance(size, int):
        if w <= h:
            size = [int(size * h / w), size]
        else:
            size = [size, int(size * w / h)]
    size = [int(s) for s in size]
    shape = img.shape
    x = img.reshape(-1, shape[-3] if img.ndim >= 3 else 1, h, w)
    orig_dtype = x.dtype
    if not x.is_floating_point():
        x = x.float()
    mode = interpolation.value
    if mode not in ("nearest", "nearest-exact", "bilinear", "bicubic"):
        mode = "bilinear"
    kwargs = {}
    if mode in ("bilinear", "bicubic"):
        kwargs = {"align_corners": False, "antialias": bool(antialias)}
    x = F.interpolate(x, size=size, mode=mode, **kwargs)
    if not orig_dtype.is_floating_point:
        x = x.round().clamp(0, 255).to(orig_dtype)
    return x.reshape(*shape[:-2], size[0], size[1])


__all__ = [
    "InterpolationMode",
    "pil_to_tensor",
    "to_tensor",
    "normalize",
    "gaussian_blur",
    "resize",
]
