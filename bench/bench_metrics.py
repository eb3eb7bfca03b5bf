"""Benchmark: images per second of the pixel-art metrics on CPU, one core, on 512x512 images.

Images are realistic worst cases for the 24x24 metrics: smooth noisy renders (hundreds of colours after the
downscale), plus nearest-upscaled pixel art. The palette is the colours of 40 pixel-art "training" images (a few
hundred colours, like the users' 203-image set). Prints figures; asserts nothing. Target: >= 500 images/s for the
24x24 metrics (unique_colors_24, unique_colors_24_two_stage, colors_95, palette_distance).

Each figure is the best of --repeat passes over the images (other processes only ever slow a pass down). --numpy
measures the numpy versions that the compiled kernels replace (what an install without a C compiler runs).

    python bench/bench_metrics.py [--images 400] [--repeat 3] [--numpy]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image, ImageFilter

from orchestrator.evaluation import metrics as m


def renders(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        if i % 2:
            small = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) // 32 * 32
            out.append(Image.fromarray(small).resize((512, 512), Image.NEAREST))
        else:
            noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            out.append(Image.fromarray(noise).resize((512, 512), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2)))
    return out


REPEAT = 3


def rate(label: str, function, images: list[Image.Image]) -> float:
    function(images[0])  # warm caches
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        for image in images:
            function(image)
        best = min(best, time.perf_counter() - start)
    per_second = len(images) / best
    print(f"  {label:<34} {per_second:10.0f} images/s")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3, help="passes per figure; the best is printed")
    parser.add_argument("--numpy", action="store_true", help="the numpy versions instead of the compiled kernels")
    args = parser.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    if args.numpy:
        m._kernels = None
    print(f"metrics: {'numpy versions' if m._kernels is None else 'compiled kernels'}; best of {REPEAT} passes")
    images = renders(args.images)
    training = [Image.fromarray(np.random.default_rng(100 + i).integers(0, 8, (24, 24, 3), dtype=np.uint8) * 36)
                .resize((512, 512), Image.NEAREST) for i in range(40)]
    palette = m.palette_of(training)
    colours = np.mean([m.unique_colors_24(i) for i in images])
    print(f"{len(images)} images 512x512 (mean unique_colors_24 {colours:.0f}); palette of {len(palette)} colours")

    def metrics_24(image: Image.Image, palette: m.Palette) -> None:
        small = m.downscale_24(image)
        m.unique_colors(small)
        m.unique_colors_24_two_stage(image)
        m.colors_95(image, small=small)
        m.palette_distance(image, palette, small=small)

    def cold(function):
        """Every colour unseen: the palette forgets what it computed before each image."""
        def run(image: Image.Image) -> None:
            palette.forget()
            function(image, palette)
        return run

    rate("unique_colors_24", m.unique_colors_24, images)
    rate("unique_colors_24_two_stage", m.unique_colors_24_two_stage, images)
    rate("colors_95", m.colors_95, images)
    rate("palette_distance, colours unseen", cold(lambda image, p: m.palette_distance(image, p)), images)
    rate("grid_alignment (512 image)", m.grid_alignment, images)
    cold_total = rate("all 24x24 metrics, colours unseen", cold(metrics_24), images)
    for image in images:  # the palette remembers every colour of these renders now
        m.palette_distance(image, palette)
    rate("palette_distance, colours seen before", lambda image: m.palette_distance(image, palette), images)
    warm_total = rate("all 24x24 metrics, colours seen", lambda image: metrics_24(image, palette), images)
    rate("score_image (all five), colours seen", lambda image: m.score_image(image, palette), images)
    for label, total in (("colours unseen", cold_total), ("colours seen", warm_total)):
        print(f"target >= 500 images/s for the 24x24 metrics together, {label}: "
              f"{'met' if total >= 500 else 'NOT met'} ({total:.0f})")


if __name__ == "__main__":
    main()
