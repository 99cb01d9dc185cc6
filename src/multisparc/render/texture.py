"""Cheap procedural textures: a deterministic brightness factor per surface point.

A texture modulates a surface's albedo as a function of the hit point in the surface's own metric
frame (an object's scaled CAD frame `s * X_cad`, a room plane's in-plane coordinates), so the pattern
sticks to the surface whatever the camera or pose, and synthetic RGB is not flat. No randomness: the
same point always gets the same factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PATTERNS = ("plain", "stripes", "checker", "planks", "grain")
# Width of the dark seam between planks, as a fraction of the plank width.
_SEAM = 0.04


@dataclass(frozen=True)
class Texture:
    """A procedural albedo pattern.

    Attributes:
        pattern: one of PATTERNS. `stripes`: cosine bands along local x; `checker`: 3D checkerboard;
            `planks`: boards along local y of width `period` with a per-board brightness and dark seams;
            `grain`: wavy wood-like bands along local x.
        period: the pattern's repeat length in metres.
        contrast: relative brightness swing in [0, 1): factors lie in [1 - contrast, 1 + contrast].
    """

    pattern: str = "plain"
    period: float = 0.1
    contrast: float = 0.2

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown texture pattern {self.pattern!r}; expected one of {', '.join(PATTERNS)}")
        if not np.isfinite(self.period) or self.period <= 0:
            raise ValueError(f"texture period must be a positive number of metres, got {self.period!r}")
        if not 0 <= self.contrast < 1:
            raise ValueError(f"texture contrast must lie in [0, 1), got {self.contrast!r}")


PLAIN = Texture()


def _sin(angle: np.ndarray) -> np.ndarray:
    """sin of angle (...) radians in float32: numpy vectorises the float32 sine (not the float64 one,
    many times slower), and a brightness pattern needs no more precision."""
    return np.sin(angle.astype(np.float32))


def _cos(angle: np.ndarray) -> np.ndarray:
    """cos of angle (...) radians in float32 (as `_sin`)."""
    return np.cos(angle.astype(np.float32))


def _hash_unit(index: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random value in [-1, 1] for each integer-valued entry of index (...)."""
    # The shader-style sine hash: cheap, vectorised and deterministic, with no random state to carry.
    value = _sin(index * 12.9898 + 4.1414) * np.float32(43758.5453)
    return 2.0 * (value - np.floor(value)) - 1.0


def texture_factor(texture: Texture, local_points: np.ndarray) -> np.ndarray:
    """Brightness factor (M,) for local_points (3, M) (component-major) in the surface's own frame, metres."""
    if texture.pattern == "plain":
        return np.ones(local_points.shape[1])
    x, y, z = local_points / texture.period
    if texture.pattern == "stripes":
        swing = _cos(2.0 * np.pi * x)
    elif texture.pattern == "checker":
        parity = (np.floor(x) + np.floor(y) + np.floor(z)) % 2
        swing = 1.0 - 2.0 * parity
    elif texture.pattern == "planks":
        board = np.floor(x)
        seam = (x - board) < _SEAM
        swing = np.where(seam, -1.0, 0.6 * _hash_unit(board))
    else:  # grain
        swing = _sin(2.0 * np.pi * (x + 0.25 * _sin(0.7 * np.pi * z) + 0.1 * _sin(1.3 * np.pi * y)))
    return 1.0 + texture.contrast * swing
