"""Random values that are fixed functions of (seed, stream, pixel): noise that needs no full frame.

Perception noise must give a pixel the same value whether it is rendered alone, in a sparse set or in
a full frame. So nothing here draws from a running generator: white noise hashes the pixel's
coordinates with the seed, and smooth noise is a sum of random sinusoids whose parameters depend only on
(seed, stream), evaluated at the pixel. Every operation is elementwise, so the bits do not depend on
which other pixels are in the batch. `stream` (in [0, STREAMS)) separates independent fields of one
seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

# SplitMix64 constants (Steele, Lea, Flood 2014; the seeding hash of java.util.SplittableRandom).
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# Sinusoids summed per smooth field: enough for a Gaussian-looking, isotropic-looking field.
SMOOTH_COMPONENTS = 8
# Streams per seed: enough for every independent field of one scene.
STREAMS = 64
# Seeds whose constants are kept: a training process sees each scene's seed a few times in a row.
_CACHED_SEEDS = 256
# Counters at and above this code draw the smooth fields' parameters; pixel codes stay below it.
_PARAMETER_CODES = np.uint64(1 << 63)


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


def _check_stream(stream: int) -> int:
    if not 0 <= stream < STREAMS:
        raise ValueError(f"noise stream must lie in [0, {STREAMS}), got {stream!r}")
    return int(stream)


@lru_cache(maxsize=_CACHED_SEEDS)
def _seed_keys(seed: int) -> np.ndarray:
    """(STREAMS, 1) uint64 hash key of every stream of one seed."""
    key = _mix(np.array([seed], dtype=np.uint64) + _GOLDEN)
    return _mix(key ^ (np.arange(STREAMS, dtype=np.uint64) * _GOLDEN))[:, None]


def _pixel_codes(pixels: np.ndarray) -> np.ndarray:
    """(N,) uint64 code of each pixel (N, 2) int (col, row): row in the high, column in the low 32 bits."""
    return (pixels[:, 1].astype(np.uint64) << np.uint64(32)) | (pixels[:, 0].astype(np.uint64) & np.uint64(0xFFFFFFFF))


def _hashes(seed: int, streams: Sequence[int], codes: np.ndarray) -> np.ndarray:
    """(S, N) uint64: the hash of codes (N,) uint64 under each of the streams (S)."""
    key = _seed_keys(_check_seed(seed))[[_check_stream(stream) for stream in streams]]
    return _mix(_mix(codes ^ key) + key)


def _uniforms_of_codes(seed: int, streams: Sequence[int], codes: np.ndarray) -> np.ndarray:
    """(S, N) float64 in (0, 1): the hash of codes (N,) uint64 under each of the streams (S)."""
    return ((_hashes(seed, streams, codes) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def hashed_uniform(seed: int, stream: int, pixels: np.ndarray) -> np.ndarray:
    """(N,) float64 in (0, 1), one independent uniform per pixel (N, 2) int (col, row); stream in
    [0, STREAMS)."""
    return _uniforms_of_codes(seed, (stream,), _pixel_codes(pixels))[0]


def hashed_uniforms(seed: int, streams: Sequence[int], pixels: np.ndarray) -> np.ndarray:
    """(S, N) float64: `hashed_uniform` of each of the S streams (the same bits), in one pass."""
    return _uniforms_of_codes(seed, streams, _pixel_codes(pixels))


def hashed_normals(seed: int, streams: Sequence[int], pixels: np.ndarray) -> np.ndarray:
    """(S, N) float32 standard normal values, one independent draw per stream and pixel (N, 2) int.

    Box-Muller on the two 32-bit halves of one hash: exact normals, in float32 (numpy vectorises its
    float32 logarithm and cosine; an inverse-CDF in float64 costs several times more)."""
    hashed = _hashes(seed, streams, _pixel_codes(pixels))
    scale = np.float32(2.0**-32)
    radius_uniform = ((hashed >> np.uint64(32)).astype(np.float32) + np.float32(0.5)) * scale
    angle_uniform = ((hashed & np.uint64(0xFFFFFFFF)).astype(np.float32) + np.float32(0.5)) * scale
    return np.sqrt(np.float32(-2.0) * np.log(radius_uniform)) * np.cos(np.float32(2.0 * np.pi) * angle_uniform)


def hashed_normal(seed: int, stream: int, pixels: np.ndarray) -> np.ndarray:
    """(N,) float32 standard normal values, one independent draw per pixel (N, 2) int (col, row);
    see `hashed_normals`."""
    return hashed_normals(seed, (stream,), pixels)[0]


@lru_cache(maxsize=_CACHED_SEEDS)
def _parameter_uniforms(seed: int) -> np.ndarray:
    """(STREAMS, 3 K) float64 uniforms in (0, 1) that set the K = SMOOTH_COMPONENTS cosines of each
    stream's smooth field (hashes of counters outside the pixel codes)."""
    codes = _PARAMETER_CODES + np.arange(3 * SMOOTH_COMPONENTS, dtype=np.uint64)
    return _uniforms_of_codes(seed, range(STREAMS), codes)


@lru_cache(maxsize=16 * _CACHED_SEEDS)
def _cosines(
    seed: int, streams: tuple[int, ...], wavelengths: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column frequencies, row frequencies (radians per pixel) and phases, each (S K, 1) float32, of the
    K = SMOOTH_COMPONENTS cosines of each stream's smooth field, stream after stream: uniform directions
    and phases, log-uniform wavelengths within `wavelengths` (pixels)."""
    uniforms = _parameter_uniforms(seed)[[_check_stream(stream) for stream in streams]]
    angle, log_wavelength, phase = uniforms.reshape(len(streams), 3, SMOOTH_COMPONENTS).transpose(1, 0, 2)
    low, high = np.log(wavelengths[0]), np.log(wavelengths[1])
    wavenumber = 2.0 * np.pi / np.exp(low + (high - low) * log_wavelength)
    angle = 2.0 * np.pi * angle
    columns = np.stack([wavenumber * np.cos(angle), wavenumber * np.sin(angle), 2.0 * np.pi * phase])
    return tuple(columns.reshape(3, -1, 1).astype(np.float32))  # type: ignore[return-value]


def smooth_fields(
    seed: int, streams: Sequence[int], pixels: np.ndarray, wavelengths: tuple[float, float]
) -> np.ndarray:
    """(S, N) float32 smooth random fields of zero mean and unit variance at pixels (N, 2) (col, row),
    one per stream; see `smooth_field`."""
    key = tuple(int(stream) for stream in streams)
    freq_u, freq_v, phase = _cosines(_check_seed(seed), key, (float(wavelengths[0]), float(wavelengths[1])))
    cols, rows = pixels[:, 0].astype(np.float32), pixels[:, 1].astype(np.float32)
    # float32 throughout: numpy vectorises the float32 cosine (not the float64 one, ~30x slower), and
    # (S K, N) rows keep every operation a contiguous elementwise loop; ample for noise.
    cosines = freq_u * cols
    cosines += freq_v * rows
    cosines += phase
    np.cos(cosines, out=cosines)
    amplitude = np.float32(np.sqrt(2.0 / SMOOTH_COMPONENTS))
    return cosines.reshape(len(key), SMOOTH_COMPONENTS, len(pixels)).sum(axis=1) * amplitude


def smooth_field(seed: int, stream: int, pixels: np.ndarray, wavelengths: tuple[float, float]) -> np.ndarray:
    """(N,) float32 smooth random field of zero mean and unit variance at pixels (N, 2) (col, row).

    A sum of SMOOTH_COMPONENTS cosines of random direction, phase and wavelength (log-uniform within
    `wavelengths`, pixels), amplitude sqrt(2 / SMOOTH_COMPONENTS) each.
    """
    return smooth_fields(seed, (stream,), pixels, wavelengths)[0]
