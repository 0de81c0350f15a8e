"""Write a small synthetic, learnable image classification set as `.npz`: `x` (N, H, W) uint8 and `y` (N,) int64.

Four classes of grey images, each a shape or texture at a random place, phase and contrast, plus noise:
0 horizontal stripes, 1 vertical stripes, 2 a filled square, 3 a ring. The same seed gives the same file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import numpy as np

CLASSES = ("horizontal_stripes", "vertical_stripes", "square", "ring")


def _stripes(rng: np.random.Generator, size: int, axis: int) -> np.ndarray:
    period = int(rng.integers(3, 6))
    phase = int(rng.integers(period))
    line = ((np.arange(size) + phase) % period < period / 2).astype(np.float32)
    return np.repeat(line[:, None], size, axis=1) if axis == 0 else np.repeat(line[None, :], size, axis=0)


def _square(rng: np.random.Generator, size: int) -> np.ndarray:
    side = int(rng.integers(size // 4, size // 2 + 1))
    top, left = rng.integers(0, size - side + 1, size=2)
    image = np.zeros((size, size), np.float32)
    image[top: top + side, left: left + side] = 1.0
    return image


def _ring(rng: np.random.Generator, size: int) -> np.ndarray:
    radius = rng.uniform(size / 5, size / 3)
    cy, cx = rng.uniform(radius, size - radius, size=2)
    yy, xx = np.mgrid[:size, :size]
    distance = np.hypot(yy - cy, xx - cx)
    return (np.abs(distance - radius) < 1.0).astype(np.float32)


PATTERNS: tuple[Callable[[np.random.Generator, int], np.ndarray], ...] = (
    lambda rng, size: _stripes(rng, size, 0), lambda rng, size: _stripes(rng, size, 1), _square, _ring,
)


def make_dataset(n: int = 2000, size: int = 16, noise: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` images of `size` x `size` with balanced labels; `noise` is the Gaussian noise std (image range 0..1)."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % len(PATTERNS)).astype(np.int64)
    x = np.empty((n, size, size), np.uint8)
    for i, label in enumerate(y):
        low, high = rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0)  # random contrast
        image = low + (high - low) * PATTERNS[label](rng, size) + rng.normal(0.0, noise, (size, size))
        x[i] = np.clip(image * 255.0, 0, 255).round().astype(np.uint8)
    return x, y


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data.npz"), help="output .npz file")
    parser.add_argument("--n", type=int, default=2000, help="number of images")
    parser.add_argument("--size", type=int, default=16, help="image height and width in pixels")
    parser.add_argument("--noise", type=float, default=0.25, help="Gaussian noise std (images in 0..1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    x, y = make_dataset(args.n, args.size, args.noise, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, x=x, y=y)
    print(f"wrote {args.out}: x {x.shape} uint8, y {y.shape} over {len(CLASSES)} classes ({', '.join(CLASSES)})")
    return args.out


if __name__ == "__main__":
    main()
