"""Pixel-art metrics of one generated image: pure functions of Pillow images and numpy arrays.

Every metric is "lower is better". The names are the columns of ``evaluation_samples``
(:data:`orchestrator.tracking.models.METRICS`).

* ``unique_colors_24`` — the users' metric, reproduced exactly: the number of distinct RGB colours of
  ``image.convert("RGB").resize((24, 24), Image.NEAREST)``. A clean 24x24 portrait has a few dozen; a smooth render
  has hundreds (their CAPTION_FIX epoch 8 averaged 216.6).
* ``unique_colors_24_two_stage`` — the same count after their proposed two-stage downscale
  (``resize((96, 96), LANCZOS)`` then ``resize((24, 24), NEAREST)``, notes 002): less sensitive to which single
  source pixel the nearest-neighbour sampler happens to hit.
* ``colors_95`` — the smallest number of colours that together cover at least 95% of the 576 pixels of the 24x24
  NEAREST downscale: ignores a few stray pixels that inflate ``unique_colors_24``.
* ``palette_distance`` — the mean CIEDE2000 distance from each pixel of the 24x24 NEAREST downscale to the nearest
  colour of a reference palette (normally: every colour of the training images' 24x24 downscales). 0 means every
  pixel uses a training colour; about 1 is a just-noticeable difference.
* ``grid_alignment`` — the mean over the 24x24 cells of the full-size image of the within-cell variance of the pixel
  values (per RGB channel, averaged over channels, in 8-bit units squared). 0 means every cell is one flat colour,
  i.e. the image is a nearest-neighbour upscale of a 24x24 image; anti-aliased or smooth images score high.
  Cells are the pixels that Pillow's NEAREST upscale of a 24x24 image would fill, so the grid matches exactly.

A sample is *blank* (:func:`is_blank`) when one colour covers at least 95% of its 24x24 downscale (``colors_95``
of 1): the black image of a NaN-collapsed model, or a flat one. It would win ``unique_colors_24`` with a score of 1,
so an epoch with a blank sample is never a run's best epoch (the store applies the same rule in SQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property, lru_cache
from itertools import repeat

import numpy as np
from PIL import Image

try:  # the compiled inner loops (setup.py); without them the numpy versions below give the same results, slower
    from orchestrator.evaluation import _kernels
except ImportError:  # pragma: no cover - depends on the install
    _kernels = None

GRID = 24
TWO_STAGE_SIZE = 96
COVERAGE = 0.95

__all__ = [
    "GRID",
    "Palette",
    "ciede2000",
    "colors_95",
    "compiled_kernels_in_use",
    "downscale_24",
    "downscale_24_two_stage",
    "grid_alignment",
    "describe_best_epoch",
    "is_blank",
    "palette_distance",
    "palette_of",
    "rgb_to_lab",
    "score_image",
    "unique_colors",
    "unique_colors_24",
    "unique_colors_24_two_stage",
]


def compiled_kernels_in_use() -> bool:
    """Whether the compiled kernels (setup.py) run the metrics; without them the numpy versions give the same scores,
    several times slower."""
    return _kernels is not None


# ---- downscales ------------------------------------------------------------------------------------------------


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def downscale_24(image: Image.Image) -> Image.Image:
    """The users' downscale: RGB, ``resize((24, 24), Image.NEAREST)``."""
    return _rgb(image).resize((GRID, GRID), Image.NEAREST)


def downscale_24_two_stage(image: Image.Image) -> Image.Image:
    """512 → 96 LANCZOS → 24 NEAREST (the users' notes 002), bit for bit what Pillow gives (about 2x faster)."""
    return Image.fromarray(_two_stage_pixels(image), "RGB")


def _pixels(image: Image.Image) -> object:
    """What the full-size metrics read: for the compiled kernels Pillow's own pixel storage, borrowed through its Arrow
    export (Pillow >= 11.2, images in one memory block: no copy), else a (height, width, 3) uint8 array."""
    rgb = _rgb(image)
    if _kernels is not None:
        try:
            return rgb.__arrow_c_array__()
        except (AttributeError, ValueError):  # an older Pillow, or an image stored in several blocks
            pass
    return np.asarray(rgb)


def _array(image: Image.Image, pixels: object) -> np.ndarray:
    """The (height, width, 3) uint8 array the numpy versions read."""
    return pixels if isinstance(pixels, np.ndarray) else np.asarray(_rgb(image))


def _channel_planes(pixels: np.ndarray) -> np.ndarray:
    """Pixels as float64 (3, height, width) channel planes: the layout the numpy matrix products below read."""
    return np.moveaxis(pixels, 2, 0).astype(np.float64)


def _two_stage_pixels(image: Image.Image, pixels: object = None) -> np.ndarray:
    """The two-stage downscale as a (24, 24, 3) uint8 array.

    The NEAREST step keeps 576 of the 9216 LANCZOS pixels, so only those are computed: Pillow's own fixed-point
    LANCZOS (its coefficients, rounding and clipping, horizontal pass first) for the 24 kept columns of every row the
    kept rows read, then the 24 kept rows. The compiled kernel does Pillow's int32 arithmetic; the numpy version does
    the integer sums as float64 matrix products, exact at these magnitudes (< 2^31). A test compares both with
    ``resize(LANCZOS).resize(NEAREST)`` on many images and sizes.
    """
    pixels = _pixels(image) if pixels is None else pixels
    width, height = image.size
    columns, rows = _lanczos_taps(width), _lanczos_taps(height)
    if _kernels is not None:
        kept = _kernels.two_stage(pixels, height, width, columns.sparse, rows.sparse)
        return np.frombuffer(kept, dtype=np.uint8).reshape(GRID, GRID, 3)
    planes = _channel_planes(_array(image, pixels))
    first, last = rows.read_from, rows.read_to
    horizontal = _fixed_point(planes[:, first:last].reshape(-1, width) @ columns.weights)  # rows the kept rows read
    kept = _fixed_point(rows.weights[first:last].T @ horizontal.reshape(3, last - first, GRID))  # (3, 24, 24)
    return kept.transpose(1, 2, 0).astype(np.uint8)


_PRECISION_BITS = 22  # Pillow's Resample.c: 32 - 8 - 2


class _Taps:
    """Pillow's LANCZOS coefficients for the output positions the NEAREST step keeps, as a dense (in, 24) matrix."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights
        used = np.flatnonzero(weights.any(axis=1))
        self.read_from, self.read_to = int(used[0]), int(used[-1]) + 1
        # for the compiled kernel: each kept position's first tap, tap count and int32 taps (padded to one width)
        starts, counts = np.zeros(GRID, np.int32), np.zeros(GRID, np.int32)
        for j in range(GRID):
            nonzero = np.flatnonzero(weights[:, j])
            if nonzero.size:
                starts[j], counts[j] = nonzero[0], nonzero[-1] - nonzero[0] + 1
        coefficients = np.zeros((GRID, max(int(counts.max()), 1)), np.int32)
        for j in range(GRID):
            coefficients[j, : counts[j]] = weights[starts[j] : starts[j] + counts[j], j]
        self.sparse = (starts, counts, coefficients)


@lru_cache(maxsize=16)
def _lanczos_taps(in_size: int) -> _Taps:
    import math

    def sinc(x: float) -> float:
        return 1.0 if x == 0.0 else math.sin(x * math.pi) / (x * math.pi)

    def lanczos(x: float) -> float:
        return sinc(x) * sinc(x / 3) if -3.0 <= x < 3.0 else 0.0

    # precompute_coeffs() and normalize_coeffs_8bpc() of Pillow's Resample.c, in the same double arithmetic.
    scale = in_size / TWO_STAGE_SIZE
    filterscale = max(scale, 1.0)
    support = 3.0 * filterscale
    ss = 1.0 / filterscale  # Pillow multiplies by the reciprocal: so must we, to the last bit
    weights = np.zeros((in_size, GRID), dtype=np.float64)
    for j in range(GRID):
        center = (int((j + 0.5) * TWO_STAGE_SIZE / GRID) + 0.5) * scale  # the LANCZOS pixel NEAREST keeps
        low = max(int(center - support + 0.5), 0)
        count = min(int(center + support + 0.5), in_size) - low
        taps = [lanczos((x + low - center + 0.5) * ss) for x in range(count)]
        total = 0.0
        for tap in taps:
            total += tap
        for x, tap in enumerate(taps):
            tap = tap / total if total != 0.0 else tap
            weights[low + x, j] = math.trunc(tap * (1 << _PRECISION_BITS) + (0.5 if tap >= 0 else -0.5))
    return _Taps(weights)


def _fixed_point(sums: np.ndarray) -> np.ndarray:
    """Pillow's clip8(): add half, shift the fixed point away, clamp to 0..255 (as float64 for the next product)."""
    return np.clip(np.floor((sums + (1 << (_PRECISION_BITS - 1))) / (1 << _PRECISION_BITS)), 0, 255)


def _packed(image: Image.Image | np.ndarray) -> np.ndarray:
    """Pixels (of an image, or an (…, 3) uint8 array) as one uint32 per pixel (0xRRGGBB)."""
    pixels = image if isinstance(image, np.ndarray) else np.asarray(_rgb(image))
    a = pixels.astype(np.uint32).reshape(-1, 3)
    return (a[:, 0] << 16) | (a[:, 1] << 8) | a[:, 2]


def unique_colors(image: Image.Image | np.ndarray) -> int:
    """Number of distinct RGB colours of ``image`` (or an (…, 3) uint8 array) as it is (no resizing)."""
    return int(np.unique(_packed(image)).size)


# ---- the metrics ------------------------------------------------------------------------------------------------


def unique_colors_24(image: Image.Image) -> int:
    """Distinct RGB colours of the 24x24 NEAREST downscale (lower is better; the users' metric)."""
    return unique_colors(downscale_24(image))


def unique_colors_24_two_stage(image: Image.Image, *, pixels: object = None) -> int:
    """Distinct RGB colours of the 96 LANCZOS → 24 NEAREST downscale (lower is better)."""
    return unique_colors(_two_stage_pixels(image, pixels))


def colors_95(image: Image.Image, *, coverage: float = COVERAGE, small: Image.Image | None = None) -> int:
    """Smallest number of colours covering ``coverage`` of the 24x24 NEAREST downscale's pixels (lower is better)."""
    pixels = _packed(small if small is not None else downscale_24(image))
    _, counts = np.unique(pixels, return_counts=True)
    counts = np.sort(counts)[::-1]
    needed = coverage * pixels.size
    return int(np.searchsorted(np.cumsum(counts), needed - 1e-9) + 1)


# ---- colour science ---------------------------------------------------------------------------------------------

_SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_WHITE_D65 = np.array([0.95047, 1.00000, 1.08883])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """8-bit sRGB (…, 3) → CIE L*a*b* (D65, 2° observer), float64 (…, 3)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _SRGB_TO_XYZ.T / _WHITE_D65
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of L*a*b* arrays that broadcast against each other.

    Follows Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes, supplementary
    test data, and mathematical observations", including their conventions for hue at zero chroma and for the mean
    hue; tested against their published test pairs.
    """
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]

    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    c_bar7 = c_bar**7
    g = 0.5 * (1 - np.sqrt(c_bar7 / (c_bar7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    h1p = np.where((a1p == 0) & (b1 == 0), 0.0, h1p)
    h2p = np.where((a2p == 0) & (b2 == 0), 0.0, h2p)

    d_l = L2 - L1
    d_c = c2p - c1p
    chroma_product = c1p * c2p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chroma_product == 0, 0.0, dh)
    d_h = 2 * np.sqrt(chroma_product) * np.sin(np.radians(dh / 2))

    l_bar = (L1 + L2) / 2
    c_bar_p = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = np.where(
        np.abs(h1p - h2p) <= 180, h_sum / 2, np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)
    )
    h_bar = np.where(chroma_product == 0, h_sum, h_bar)

    t = (
        1
        - 0.17 * np.cos(np.radians(h_bar - 30))
        + 0.24 * np.cos(np.radians(2 * h_bar))
        + 0.32 * np.cos(np.radians(3 * h_bar + 6))
        - 0.20 * np.cos(np.radians(4 * h_bar - 63))
    )
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    c_bar_p7 = c_bar_p**7
    r_c = 2 * np.sqrt(c_bar_p7 / (c_bar_p7 + 25.0**7))
    l50 = (l_bar - 50) ** 2
    s_l = 1 + 0.015 * l50 / np.sqrt(20 + l50)
    s_c = 1 + 0.045 * c_bar_p
    s_h = 1 + 0.015 * c_bar_p * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt(
        (d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h)
    )


_MAX_S_L = 1.75  # S_L = 1 + 0.015 (L̄-50)² / sqrt(20 + (L̄-50)²) stays below 1.75 for 0 ≤ L̄ ≤ 100
_RT_FLOOR = 1 - float(np.sin(np.radians(60)))  # 1 - max|R_T|/2
_MEMO_LIMIT = 1 << 18  # colours remembered per palette (a dict of about 30 MB at most)


class Palette:
    """A reference palette: distinct 8-bit RGB colours and their L*a*b* values (computed once)."""

    def __init__(self, colors: Iterable[Sequence[int]] | np.ndarray) -> None:
        rgb = np.asarray(list(colors) if not isinstance(colors, np.ndarray) else colors, dtype=np.uint8).reshape(-1, 3)
        if rgb.shape[0] == 0:
            raise ValueError("a palette needs at least one colour")
        packed = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
        packed = np.unique(packed)
        self.packed = packed
        self.rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)
        self.lab = rgb_to_lab(self.rgb)
        self.chroma = self._chroma_of(self.lab)
        self._memo: dict[int, float] = {}

    def __len__(self) -> int:
        return int(self.rgb.shape[0])

    def nearest_distance(self, lab: np.ndarray) -> np.ndarray:
        """Exact CIEDE2000 distance from each L*a*b* row of ``lab`` (N, 3) to its nearest palette colour.

        Exhaustive in effect but not in cost. The CIEDE2000 distance to the palette colour nearest in Euclidean
        L*a*b* is an upper bound U; CIEDE2000 is then computed only for the pairs whose lower bound is below U:
        ΔE00² ≥ (ΔL/S_L)² + (1 - sin 60°)·(Δa² + Δb²)/S_C,max², because |R_T| ≤ 2 sin 60° makes the chroma/hue part
        at least (1 - |R_T|/2)(ΔC'²/S_C² + ΔH'²/S_H²), ΔC'² + ΔH'² = Δa'² + Δb² ≥ Δa² + Δb², S_H ≤ S_C, and
        S_C ≤ 1 + 0.045·1.5·max(C1, C2) since C' ≤ 1.5 C. A first box test |ΔL| < 1.75 U (S_L < 1.75) keeps the
        N×P work to one comparison per pair. The compiled kernel does the same search with tighter bounds, walking
        the palette in L order (``_kernels.c``). Colours are those of 8-bit sRGB (0 ≤ L ≤ 100), where S_L < 1.75.
        """
        lab = np.ascontiguousarray(lab, dtype=np.float64).reshape(-1, 3)
        if _kernels is not None:  # the same search in C, with tighter bounds (see _kernels.c)
            best = np.empty(lab.shape[0], dtype=np.float64)
            _kernels.nearest_ciede2000(lab, self._by_lightness, best)
            return best
        pal = self.lab
        euclid = (pal**2).sum(1)[None, :] - 2 * lab @ pal.T  # |q - p|² minus the |q|² that argmin ignores
        upper = ciede2000(lab, pal[euclid.argmin(axis=1)])
        tolerance = upper + 1e-9
        rows, cols = np.nonzero(np.abs(lab[:, None, 0] - pal[None, :, 0]) < _MAX_S_L * tolerance[:, None])
        q, p = lab[rows], pal[cols]
        l_bar50 = ((q[:, 0] + p[:, 0]) / 2 - 50) ** 2
        s_l = 1 + 0.015 * l_bar50 / np.sqrt(20 + l_bar50)
        s_c = 1 + 0.045 * 1.5 * np.maximum(self._chroma_of(q), self.chroma[cols])
        lower2 = ((q[:, 0] - p[:, 0]) / s_l) ** 2 + _RT_FLOOR * ((q[:, 1] - p[:, 1]) ** 2 + (q[:, 2] - p[:, 2]) ** 2) / s_c**2
        keep = lower2 < tolerance[rows] ** 2
        rows, cols = rows[keep], cols[keep]
        best = upper.copy()
        if rows.size:
            np.minimum.at(best, rows, ciede2000(lab[rows], pal[cols]))
        return best

    def forget(self) -> None:
        """Drop the remembered per-colour distances (what a benchmark of unseen colours needs)."""
        self._memo.clear()

    def distance_of_packed(self, colors: np.ndarray) -> np.ndarray:
        """Nearest-palette CIEDE2000 distance of packed 0xRRGGBB colours, remembered per colour.

        Renders of one run reuse colours (backgrounds, outlines, and all of them once the LoRA has learned the
        palette), so a colour's distance is computed once per palette. Palette members are exactly 0.
        """
        colors = np.asarray(colors, dtype=np.uint32)
        memo = self._memo
        known = np.fromiter(map(memo.get, colors.tolist(), repeat(-1.0)), dtype=np.float64, count=colors.size)
        missing = known < 0
        if missing.any():
            fresh = colors[missing]
            rgb = np.stack([(fresh >> 16) & 255, (fresh >> 8) & 255, fresh & 255], axis=1)
            # members are exactly 0 (their L*a*b* from another array may differ in the last bit)
            at = np.minimum(np.searchsorted(self.packed, fresh), self.packed.size - 1)  # self.packed is sorted
            distance = np.where(self.packed[at] == fresh, 0.0, self.nearest_distance(rgb_to_lab(rgb)))
            if len(memo) + fresh.size > _MEMO_LIMIT:
                memo.clear()
            memo.update(zip(fresh.tolist(), distance.tolist()))
            known[missing] = distance
        return known

    @cached_property
    def _by_lightness(self) -> np.ndarray:
        """The palette's L*a*b* sorted by L: the compiled search walks it outwards from each colour's L."""
        return np.ascontiguousarray(self.lab[np.argsort(self.lab[:, 0], kind="stable")])

    @staticmethod
    def _chroma_of(lab: np.ndarray) -> np.ndarray:
        return np.hypot(lab[:, 1], lab[:, 2])

    def hex_colors(self) -> list[str]:
        return [f"#{int(p):06x}" for p in self.packed]


def palette_of(images: Iterable[Image.Image]) -> Palette:
    """Every colour of the images' 24x24 NEAREST downscales (the training images' palette)."""
    packed = [np.unique(_packed(downscale_24(image))) for image in images]
    if not packed:
        raise ValueError("no images to take a palette from")
    p = np.unique(np.concatenate(packed))
    return Palette(np.stack([(p >> 16) & 255, (p >> 8) & 255, p & 255], axis=1))


def palette_distance(image: Image.Image, palette: Palette, *, small: Image.Image | None = None) -> float:
    """Mean CIEDE2000 distance from each 24x24 NEAREST-downscale pixel to its nearest palette colour (lower is better)."""
    pixels = _packed(small if small is not None else downscale_24(image))
    colors, counts = np.unique(pixels, return_counts=True)
    return float((palette.distance_of_packed(colors) * counts).sum() / counts.sum())


# ---- grid alignment ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _cell_starts(length: int) -> np.ndarray:
    """Where each grid cell starts along one axis: the runs of equal source index in Pillow's NEAREST upscale of 24.

    Cells are rectangles (a row run × a column run), so summing over them is two ``reduceat`` calls.
    """
    index = np.arange(GRID, dtype=np.int32).reshape(1, GRID)
    source = np.asarray(Image.fromarray(index, mode="I").resize((length, 1), Image.NEAREST)).reshape(-1)
    return np.concatenate([[0], np.flatnonzero(np.diff(source)) + 1])


@lru_cache(maxsize=16)
def _cell_index(length: int) -> np.ndarray:
    """The grid cell (0..23) of each pixel along one axis, as int32 for the compiled kernel."""
    starts = _cell_starts(length)
    return np.repeat(np.arange(starts.size, dtype=np.int32), np.diff(starts, append=length))


@lru_cache(maxsize=16)
def _cell_membership(length: int) -> np.ndarray:
    """(length, cells) 0/1 matrix: the grid cell each pixel along one axis belongs to."""
    starts = _cell_starts(length)
    cell = np.repeat(np.arange(starts.size), np.diff(starts, append=length))
    return (cell[:, None] == np.arange(starts.size)[None, :]).astype(np.float64)


def grid_alignment(image: Image.Image, *, pixels: object = None) -> float:
    """Mean within-cell variance of the full image on the 24-cell grid (8-bit units², mean of R, G, B; lower is better)."""
    pixels = _pixels(image) if pixels is None else pixels
    width, height = image.size
    rows, cols = _cell_membership(height), _cell_membership(width)
    counts = np.outer(rows.sum(axis=0), cols.sum(axis=0))[:, :, None]  # (24, 24, 1)
    # Cell sums and sums of squares are integers below 2^53: exact in int64 (kernel) and in float64 (numpy products).
    if _kernels is not None:
        sums = np.empty((GRID, GRID, 2, 3), np.int64)
        _kernels.cell_sums(pixels, height, width, _cell_index(height), _cell_index(width), sums)
        sums = sums[: rows.shape[1], : cols.shape[1]]  # an image under 24 pixels has fewer cells
        total, squares = sums[:, :, 0].astype(np.float64), sums[:, :, 1].astype(np.float64)  # (24, 24, 3)
    else:
        planes = _channel_planes(_array(image, pixels))
        total = (rows.T @ (planes @ cols)).transpose(1, 2, 0)
        squares = (rows.T @ ((planes * planes) @ cols)).transpose(1, 2, 0)
    # n·Σx² − (Σx)² in exact integers: flat cells are exactly 0, as with a two-pass variance
    variance = (counts * squares - total * total) / (counts * counts)  # (24, 24, 3)
    return float(np.ascontiguousarray(variance).mean())  # summed in (row, column, channel) order either way


# ---- all at once ------------------------------------------------------------------------------------------------


def score_image(image: Image.Image, palette: Palette | None = None) -> dict[str, float | None]:
    """Every metric of one image (``palette_distance`` is None without a palette), keyed by metric name."""
    rgb = _rgb(image)
    small = downscale_24(rgb)
    pixels = _pixels(rgb)  # once, for the two full-size metrics
    return {
        "unique_colors_24": float(unique_colors(small)),
        "unique_colors_24_two_stage": float(unique_colors_24_two_stage(rgb, pixels=pixels)),
        "colors_95": float(colors_95(rgb, small=small)),
        "palette_distance": palette_distance(rgb, palette, small=small) if palette is not None else None,
        "grid_alignment": grid_alignment(rgb, pixels=pixels),
    }


def is_blank(metrics: dict[str, float | None]) -> bool:
    """Whether scored metrics describe a blank sample (one colour over 95% of the 24x24 downscale); the same rule as
    :data:`orchestrator.tracking.models.BLANK_SAMPLE_SQL`."""
    colours_95, unique = metrics.get("colors_95"), metrics.get("unique_colors_24")
    if colours_95 is not None:
        return colours_95 <= 1
    return unique is not None and unique <= 1


def describe_best_epoch(best_epoch: int | None, best_score: float | None) -> str:
    """The run's best epoch for messages; says why there is none (blank epochs never count)."""
    if best_epoch is None:
        return "no best epoch (no scored epoch without blank samples: a NaN-collapsed model renders black)"
    score = f" ({best_score:.1f} mean unique colours)" if best_score is not None else ""
    return f"best epoch {best_epoch}{score}"
