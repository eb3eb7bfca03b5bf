"""The pixel-art metrics: known answers, the users' exact downscale, CIEDE2000 against Sharma et al.'s test data."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from orchestrator.evaluation import metrics as m
from orchestrator.tracking.models import METRICS

# Sharma, Wu & Dalal (2005), Table 1: (L1, a1, b1), (L2, a2, b2), ΔE00
SHARMA = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, 2.8361, -74.0200), (50.0000, 0.0000, -82.7485), 3.4412),
    ((50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -1.1848, -84.8006), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -0.9009, -85.5211), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, -1.0000, 2.0000), (50.0000, 0.0000, 0.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0010), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0012), 7.2195),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0010, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0011, -2.4900), 4.7461),
    ((50.0000, 2.5000, 0.0000), (50.0000, 0.0000, -2.5000), 4.3065),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((50.0000, 2.5000, 0.0000), (61.0000, -5.0000, 29.0000), 22.8977),
    ((50.0000, 2.5000, 0.0000), (56.0000, -27.0000, -3.0000), 31.9030),
    ((50.0000, 2.5000, 0.0000), (58.0000, 24.0000, 15.0000), 19.4535),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.1736, 0.5854), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2972, 0.0000), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 1.8634, 0.5757), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2592, 0.3350), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((61.2901, 3.7196, -5.3901), (61.4292, 2.2480, -4.9620), 1.8731),
    ((35.0831, -44.1164, 3.7933), (35.0232, -40.0716, 1.5901), 1.8645),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((36.4612, 47.8580, 18.3852), (36.2715, 50.5065, 21.2231), 1.4146),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def pixel_art(colors: int = 24, seed: int = 0) -> Image.Image:
    """A 24x24 image using exactly ``colors`` colours (every colour at least once)."""
    rng = np.random.default_rng(seed)
    palette = rng.choice(256**3, size=colors, replace=False)
    index = np.concatenate([np.arange(colors), rng.integers(0, colors, 576 - colors)])
    rng.shuffle(index)
    packed = palette[index].reshape(24, 24)
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb)


def gradient(size: int = 512) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x * 255 // (size - 1), y * 255 // (size - 1), (x + y) * 255 // (2 * size - 2)], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def test_ciede2000_matches_sharma_test_data():
    lab1 = np.array([p[0] for p in SHARMA])
    lab2 = np.array([p[1] for p in SHARMA])
    expected = np.array([p[2] for p in SHARMA])
    np.testing.assert_allclose(m.ciede2000(lab1, lab2), expected, atol=1e-4)
    np.testing.assert_allclose(m.ciede2000(lab2, lab1), expected, atol=1e-4)  # symmetric


def test_compiled_ciede2000_matches_sharma_test_data_and_the_numpy_formula():
    """The kernel's own CIEDE2000 (a one-colour palette's nearest distance is the formula itself), on Sharma's pairs:
    they include the hue discontinuities (pairs 9-16: hues 180° apart, the mean-hue rule's edge)."""
    if m._kernels is None:
        pytest.skip("the compiled kernels are not built in this install")
    for first, second, expected in SHARMA:
        for query, colour in ((first, second), (second, first)):
            got = np.empty(1)
            m._kernels.nearest_ciede2000(np.array([query], float), np.array([colour], float), got)
            assert got[0] == pytest.approx(expected, abs=1e-4)
            assert got[0] == pytest.approx(m.ciede2000(np.array(query), np.array(colour)), rel=0, abs=1e-12)


def test_rgb_to_lab_reference_points():
    np.testing.assert_allclose(m.rgb_to_lab(np.array([255, 255, 255])), [100, 0, 0], atol=1e-3)
    np.testing.assert_allclose(m.rgb_to_lab(np.array([0, 0, 0])), [0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(m.rgb_to_lab(np.array([255, 0, 0])), [53.2408, 80.0925, 67.2032], atol=2e-3)


def test_nearest_upscaled_pixel_art_has_exactly_its_colours():
    small = pixel_art(24)
    big = small.resize((512, 512), Image.NEAREST)
    assert np.array_equal(np.asarray(m.downscale_24(big)), np.asarray(small))  # the round trip is exact
    assert m.unique_colors_24(big) == 24
    assert m.unique_colors_24_two_stage(big) <= 576
    assert m.colors_95(big) <= 24
    assert m.grid_alignment(big) == 0.0


def test_unique_colors_24_is_the_users_formula():
    image = gradient()
    theirs = len(image.resize((24, 24), Image.NEAREST).getcolors(576))
    assert m.unique_colors_24(image) == theirs
    rgba = image.convert("RGBA")
    assert m.unique_colors_24(rgba) == theirs


def test_smooth_gradient_scores_high():
    image = gradient()
    assert m.unique_colors_24(image) > 500
    assert m.unique_colors_24_two_stage(image) > 500
    assert m.colors_95(image) > 500
    assert m.grid_alignment(image) > 1.0


def test_colors_95_ignores_stray_pixels():
    a = np.zeros((24, 24, 3), np.uint8)
    a[:12] = (255, 0, 0)
    for i in range(20):  # 20 stray colours, 3.5% of the pixels
        a[23, i] = (i, i + 1, 200)
    image = Image.fromarray(a)
    assert m.unique_colors_24(image) == 22
    assert m.colors_95(image) == 2
    assert m.colors_95(Image.new("RGB", (512, 512), (1, 2, 3))) == 1


def test_palette_distance_zero_on_own_palette_and_grows_with_shift():
    images = [pixel_art(12, seed).resize((512, 512), Image.NEAREST) for seed in range(3)]
    palette = m.palette_of(images)
    assert len(palette) == 36
    assert all(m.palette_distance(image, palette) == 0.0 for image in images)
    shifted = Image.fromarray(np.clip(np.asarray(images[0]).astype(int) + 12, 0, 255).astype(np.uint8))
    assert m.palette_distance(shifted, palette) > 1.0
    black = m.Palette([(0, 0, 0)])
    assert m.palette_distance(Image.new("RGB", (24, 24), (255, 255, 255)), black) == pytest.approx(100.0, abs=1e-3)


def test_grid_alignment_definition(implementation):
    # one cell with two values 0 and 255 in equal halves of a 2x1 "image" per cell: variance 127.5²
    a = np.zeros((48, 48, 3), np.uint8)
    a[:, 1::2] = 255
    assert m.grid_alignment(Image.fromarray(a)) == pytest.approx(127.5**2)
    assert m.grid_alignment(Image.new("RGB", (512, 512), (9, 9, 9))) == 0.0


def test_score_image_keys_are_the_tracked_metrics():
    scores = m.score_image(pixel_art(5).resize((512, 512), Image.NEAREST))
    assert tuple(scores) == METRICS
    assert scores["palette_distance"] is None and scores["unique_colors_24"] == 5.0


@pytest.mark.parametrize("seed", range(4))
def test_nearest_distance_equals_brute_force(seed, implementation):
    """The pruned search must find the same minimum as CIEDE2000 against every palette colour."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 8, (300, 3)) * 36  # a lattice palette: many near ties
    spread = rng.integers(0, 256, (200, 3))  # saturated blues included, where R_T matters
    palette = m.Palette(np.concatenate([coarse, spread]))
    queries = np.concatenate([rng.integers(0, 256, (500, 3)), rng.integers(0, 40, (50, 3)), [[0, 0, 255], [20, 0, 200]]])
    lab = m.rgb_to_lab(queries)
    brute = m.ciede2000(lab[:, None, :], palette.lab[None, :, :]).min(axis=1)
    np.testing.assert_allclose(palette.nearest_distance(lab), brute, rtol=0, atol=1e-12)
    packed = (queries[:, 0] << 16) | (queries[:, 1] << 8) | queries[:, 2]
    first = palette.distance_of_packed(packed)
    again = palette.distance_of_packed(packed)  # from the memo
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, np.where(np.isin(packed, palette.packed), 0.0, brute), atol=1e-12)


@pytest.mark.parametrize("size", [(512, 512), (768, 512), (48, 30), (20, 20)])
def test_grid_alignment_equals_per_pixel_cell_variance(size, implementation):
    """Cells are the pixels Pillow's NEAREST upscale of a 24x24 image fills; variance by the two-pass formula."""
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    index = np.arange(24 * 24, dtype=np.int32).reshape(24, 24)
    labels = np.asarray(Image.fromarray(index, mode="I").resize(size, Image.NEAREST)).reshape(-1)
    pixels = np.asarray(image, dtype=np.float64).reshape(-1, 3)
    variances = []
    for cell in np.unique(labels):
        values = pixels[labels == cell]
        variances.append(((values - values.mean(axis=0)) ** 2).mean(axis=0).mean())
    assert m.grid_alignment(image) == pytest.approx(float(np.mean(variances)), rel=1e-12)


def test_blank_samples():
    assert m.is_blank(m.score_image(Image.new("RGB", (512, 512), (0, 0, 0))))  # a NaN epoch's image
    portrait = np.zeros((24, 24, 3), np.uint8)
    portrait[:, :] = (30, 140, 60)  # background: 58% of the pixels
    portrait[4:20, 6:18] = (200, 160, 120)  # face
    portrait[8, 9] = portrait[8, 14] = (20, 20, 20)  # eyes
    assert not m.is_blank(m.score_image(Image.fromarray(portrait).resize((512, 512), Image.NEAREST)))
    nearly_flat = np.full((24, 24, 3), 7, np.uint8)
    nearly_flat[0, :20] = (255, 0, 0)  # 3.5% of the pixels
    assert m.is_blank(m.score_image(Image.fromarray(nearly_flat)))
    assert not m.is_blank({"unique_colors_24": 216.6, "colors_95": None})  # a reported figure
    assert not m.is_blank({})


def test_blank_rule_is_the_same_in_python_and_sql():
    import sqlite3

    from orchestrator.tracking.models import BLANK_SAMPLE_SQL

    cases = [(c95, unique) for c95 in (None, 0.0, 1.0, 2.0, 40.0) for unique in (None, 1.0, 2.0, 300.0)]
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE evaluation_samples (colors_95 REAL, unique_colors_24 REAL)")
    for c95, unique in cases:
        connection.execute("DELETE FROM evaluation_samples")
        connection.execute("INSERT INTO evaluation_samples VALUES (?, ?)", (c95, unique))
        in_sql = connection.execute(f"SELECT COALESCE({BLANK_SAMPLE_SQL}, 0) FROM evaluation_samples").fetchone()[0]
        assert bool(in_sql) == m.is_blank({"colors_95": c95, "unique_colors_24": unique}), (c95, unique)


def test_best_epoch_messages_say_why_there_is_none():
    assert m.describe_best_epoch(8, 216.6) == "best epoch 8 (216.6 mean unique colours)"
    assert "no best epoch" in m.describe_best_epoch(None, None) and "blank" in m.describe_best_epoch(None, None)


@pytest.mark.parametrize("size", [(512, 512), (768, 768), (300, 200), (96, 96), (64, 40), (1024, 512)])
def test_two_stage_downscale_is_pillows_bit_for_bit(size, implementation):
    """Only the 576 LANCZOS pixels the NEAREST step keeps are computed; they must be exactly Pillow's."""
    rng = np.random.default_rng(size[0] * 7 + size[1])
    images = [
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)),  # noise: every rounding case
        Image.fromarray(rng.integers(0, 2, (size[1], size[0], 3), dtype=np.uint8) * 255),  # clipping at 0 and 255
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).resize(size, Image.BICUBIC),  # smooth
        pixel_art(20, 3).resize(size, Image.NEAREST),
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8), "RGBA"),  # converted first
    ]
    for image in images:
        expected = image.convert("RGB").resize((96, 96), Image.LANCZOS).resize((24, 24), Image.NEAREST)
        assert np.array_equal(np.asarray(m.downscale_24_two_stage(image)), np.asarray(expected))


# ---- the compiled kernels and the numpy versions ------------------------------------------------------------------

IMPLEMENTATIONS = ["compiled", "numpy"]


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request, monkeypatch):
    """Run a test once with the compiled kernels and once with the numpy versions that define the results."""
    if request.param == "numpy":
        monkeypatch.setattr(m, "_kernels", None)
    elif m._kernels is None:
        pytest.skip("the compiled kernels are not built in this install")
    return request.param


def test_compiled_kernels_are_built():
    """The install builds them (setup.py); without a C compiler it falls back to numpy, and this test says so."""
    import os

    if os.environ.get("ORCHESTRATOR_NUMPY_METRICS_ONLY"):
        pytest.skip("ORCHESTRATOR_NUMPY_METRICS_ONLY is set")
    assert m._kernels is not None, (
        "orchestrator.evaluation._kernels did not build: install a C compiler and reinstall "
        "(pip install -e .), or set ORCHESTRATOR_NUMPY_METRICS_ONLY=1 to test the numpy versions only"
    )


def renders_for_comparison(count: int = 12) -> list[Image.Image]:
    rng = np.random.default_rng(7)
    images = []
    for i in range(count):
        if i % 3 == 0:
            images.append(Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)))
        elif i % 3 == 1:
            small = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
            images.append(Image.fromarray(small).resize((512, 640), Image.BICUBIC))
        else:
            images.append(pixel_art(30, i).resize((512, 512), Image.NEAREST))
    images.append(Image.fromarray(rng.integers(0, 256, (300, 200, 4), dtype=np.uint8), "RGBA"))
    images.append(Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)))  # fewer than 24 cells
    return images


def test_compiled_and_numpy_scores_agree(monkeypatch):
    if m._kernels is None:
        pytest.skip("the compiled kernels are not built in this install")
    images = renders_for_comparison()
    palette_images = [pixel_art(40, 100 + i).resize((512, 512), Image.NEAREST) for i in range(5)]
    compiled = [m.score_image(image, m.palette_of(palette_images)) for image in images]
    monkeypatch.setattr(m, "_kernels", None)
    reference = [m.score_image(image, m.palette_of(palette_images)) for image in images]
    for got, want in zip(compiled, reference):
        for name in ("unique_colors_24", "unique_colors_24_two_stage", "colors_95", "grid_alignment"):
            assert got[name] == want[name], name  # integer arithmetic both ways: equal to the bit
        assert got["palette_distance"] == pytest.approx(want["palette_distance"], rel=0, abs=1e-12)


def test_pillows_storage_and_a_numpy_copy_give_the_same_scores():
    if m._kernels is None:
        pytest.skip("the compiled kernels are not built in this install")
    for image in renders_for_comparison(6):
        borrowed = m._pixels(image)
        assert isinstance(borrowed, tuple)  # Pillow's Arrow export: no copy
        copied = np.asarray(image.convert("RGB"))
        rgb = image.convert("RGB")
        assert np.array_equal(m._two_stage_pixels(rgb, borrowed), m._two_stage_pixels(rgb, copied))
        assert m.grid_alignment(rgb, pixels=borrowed) == m.grid_alignment(rgb, pixels=copied)


def test_an_image_in_several_memory_blocks_is_copied_instead():
    """Pillow stores big images in blocks; its Arrow export refuses them, so the kernels get a numpy copy."""
    big = Image.fromarray(np.random.default_rng(3).integers(0, 256, (2400, 2400, 3), dtype=np.uint8))
    pixels = m._pixels(big)
    if m._kernels is not None:
        assert isinstance(pixels, np.ndarray)
    expected = big.resize((96, 96), Image.LANCZOS).resize((24, 24), Image.NEAREST)
    assert np.array_equal(np.asarray(m.downscale_24_two_stage(big)), np.asarray(expected))


def test_kernels_refuse_wrong_input():
    kernels = m._kernels
    if kernels is None:
        pytest.skip("the compiled kernels are not built in this install")
    taps = m._lanczos_taps(64).sparse
    with pytest.raises(ValueError, match="height x width x 3"):
        kernels.two_stage(np.zeros((64, 63, 3), np.uint8), 64, 64, taps, taps)
    with pytest.raises(ValueError, match="taps do not fit"):
        kernels.two_stage(np.zeros((32, 32, 3), np.uint8), 32, 32, taps, taps)
    with pytest.raises(ValueError, match="RGB image of this size"):
        kernels.two_stage(Image.new("RGB", (64, 32)).__arrow_c_array__(), 64, 64, taps, taps)
    with pytest.raises(ValueError, match="not sorted by L"):
        kernels.nearest_ciede2000(np.zeros((1, 3)), np.array([[50.0, 0, 0], [10.0, 0, 0]]), np.empty(1))
    with pytest.raises(ValueError, match="buffer sizes"):
        kernels.nearest_ciede2000(np.zeros((2, 3)), np.array([[50.0, 0, 0]]), np.empty(1))
    with pytest.raises(ValueError, match="buffer sizes"):
        kernels.nearest_ciede2000(np.zeros((1, 3)), np.empty((0, 3)), np.empty(1))


@pytest.mark.parametrize("seed", range(3))
def test_nearest_search_is_exact_where_the_bounds_are_tightest(seed, implementation):
    """Saturated blues and purples (mean hue near 275°, where R_T is largest), greys (zero chroma), warm colours (the
    b ≥ 0 shortcut) and exact palette members, against CIEDE2000 to every palette colour."""
    rng = np.random.default_rng(seed)
    blues = np.stack([rng.integers(0, 120, 150), rng.integers(0, 80, 150), rng.integers(150, 256, 150)], axis=1)
    greys = np.repeat(rng.integers(0, 256, (40, 1)), 3, axis=1)
    warm = np.stack([rng.integers(150, 256, 150), rng.integers(60, 200, 150), rng.integers(0, 90, 150)], axis=1)
    palette = m.Palette(np.concatenate([blues[:60], greys[:20], warm[:60], rng.integers(0, 256, (60, 3))]))
    queries = np.concatenate([blues, greys, warm, rng.integers(0, 256, (400, 3)), palette.rgb[:30]])
    lab = m.rgb_to_lab(queries)
    brute = m.ciede2000(lab[:, None, :], palette.lab[None, :, :]).min(axis=1)
    np.testing.assert_allclose(palette.nearest_distance(lab), brute, rtol=0, atol=1e-12)
    assert np.all(palette.nearest_distance(palette.lab[:30]) == 0.0)


def test_nearest_search_with_a_one_colour_palette(implementation):
    palette = m.Palette([[0, 0, 255]])
    lab = m.rgb_to_lab(np.array([[0, 0, 255], [255, 255, 255], [10, 0, 200]]))
    np.testing.assert_allclose(palette.nearest_distance(lab), m.ciede2000(lab, palette.lab[0]), rtol=0, atol=1e-12)


def test_the_compiled_searchs_bounds_never_exceed_ciede2000():
    """The search prunes a palette colour when a lower bound of ΔE00² reaches the best distance so far; a bound above
    the real ΔE00² could prune the nearest colour. Every pair of a broad set of sRGB colours (greys, saturated blues
    and purples, warm colours, the cube's corners and a lattice), both bounds."""
    if m._kernels is None:
        pytest.skip("the compiled kernels are not built in this install")
    rng = np.random.default_rng(11)
    levels = np.arange(0, 256, 51)
    lattice = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    blues = np.stack([rng.integers(0, 140, 120), rng.integers(0, 90, 120), rng.integers(120, 256, 120)], axis=1)
    greys = np.repeat(rng.integers(0, 256, (40, 1)), 3, axis=1)
    near_greys = np.clip(greys + rng.integers(-3, 4, greys.shape), 0, 255)
    colours = np.concatenate([lattice, blues, greys, near_greys, rng.integers(0, 256, (300, 3))])
    lab = m.rgb_to_lab(colours)
    bounds = np.empty((len(lab), len(lab), 2))
    m._kernels.pair_bounds(lab, lab, bounds)
    exact2 = m.ciede2000(lab[:, None, :], lab[None, :, :]) ** 2
    assert np.all(bounds[:, :, 0] <= exact2 * (1 + 1e-12) + 1e-12), float((bounds[:, :, 0] - exact2).max())
    assert np.all(bounds[:, :, 1] <= exact2 * (1 + 1e-12) + 1e-12), float((bounds[:, :, 1] - exact2).max())
    # and they are not vacuous: most pairs' cheap bound is within a factor 4 of the real ΔE00²
    assert np.mean(bounds[:, :, 0] > exact2 / 4) > 0.5
