"""Random values that are fixed functions of (seed, stream, pixel): noise that needs no full frame.

Perception noise must give a pixel the same value whether it is rendered alone, in a sparse set or in
a full frame. So nothing here draws from a running generator: white noise hashes the pixel's
coordinates with the seed, and smooth noise is a sum of random sinusoids whose parameters depend only on
(seed, stream), evaluated at the pixel. Every operation is elementwise, so the bits do not depend on
which other pixels are in the batch. `stream` separates independent fields of one seed.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

# SplitMix64 constants (Steele, Lea, Flood 2014; the seeding hash of java.util.SplittableRandom).
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# Sinusoids summed per smooth field: enough for a Gaussian-looking, isotropic-looking field.
SMOOTH_COMPONENTS = 8


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of uint64 array x: a bijection whose outputs look independent. Written out:
    numpy's generators draw sequences, they cannot hash an arbitrary counter per pixel."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**64:
        raise ValueError(f"noise seed must be an integer in [0, 2**64), got {seed!r}")
    return int(seed)


def hashed_uniform(seed: int, stream: int, pixels: np.ndarray) -> np.ndarray:
    """(N,) float64 in (0, 1), one independent uniform per pixel (N, 2) int (col, row)."""
    key = _mix(np.array([_check_seed(seed)], dtype=np.uint64) + _GOLDEN)
    key = _mix(key ^ (np.array([stream], dtype=np.uint64) * _GOLDEN))
    coords = (pixels[:, 1].astype(np.uint64) << np.uint64(32)) | (
        pixels[:, 0].astype(np.uint64) & np.uint64(0xFFFFFFFF)
    )
    hashed = _mix(_mix(coords ^ key) + key)
    return ((hashed >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def hashed_normal(seed: int, stream: int, pixels: np.ndarray) -> np.ndarray:
    """(N,) float64 standard normal values, one independent draw per pixel (N, 2) int (col, row)."""
    return ndtri(hashed_uniform(seed, stream, pixels))


def smooth_field(seed: int, stream: int, pixels: np.ndarray, wavelengths: tuple[float, float]) -> np.ndarray:
    """(N,) float64 smooth random field of zero mean and unit variance at pixels (N, 2) (col, row).

    A sum of SMOOTH_COMPONENTS cosines of random direction, phase and wavelength (log-uniform within
    `wavelengths`, pixels), amplitude sqrt(2 / SMOOTH_COMPONENTS) each.
    """
    rng = np.random.default_rng([_check_seed(seed), stream])
    angle = rng.uniform(0.0, 2.0 * np.pi, SMOOTH_COMPONENTS)
    wavelength = np.exp(rng.uniform(np.log(wavelengths[0]), np.log(wavelengths[1]), SMOOTH_COMPONENTS))
    phase = rng.uniform(0.0, 2.0 * np.pi, SMOOTH_COMPONENTS)
    freq_u, freq_v = 2.0 * np.pi * np.cos(angle) / wavelength, 2.0 * np.pi * np.sin(angle) / wavelength
    u, v = pixels[:, 0].astype(np.float64), pixels[:, 1].astype(np.float64)
    amplitude = np.sqrt(2.0 / SMOOTH_COMPONENTS)
    field = np.zeros(len(pixels))
    for k in range(SMOOTH_COMPONENTS):
        # float32 cosine: vectorised by numpy (float64 is not, and is ~30x slower), and ample for noise.
        field += amplitude * np.cos((freq_u[k] * u + freq_v[k] * v + phase[k]).astype(np.float32))
    return field
