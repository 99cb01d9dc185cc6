"""How noisy a depth map is where a detection is seen: a robust estimate of the standard deviation of its
pixel-to-pixel (white) depth error, in metres.

A smooth surface's depth changes almost linearly from one pixel to the next, so the second difference
`z(p) - (z(p - 1) + z(p + 1)) / 2` along rows and columns is about zero on it, and carries 1.5 times the
variance of white noise. Its median absolute deviation ignores the few triples that straddle a depth edge.
A sensor's or a network's noise grows with the distance (`scenes.noise`: `a + b z^2`), so it is read per
detection, on the pixels of its mask.
"""

from __future__ import annotations

import numpy as np

#: Fewer valid triples than this in a mask and the noise is unknown (0 is returned).
MIN_TRIPLES = 30
# Normal consistency constant of the median absolute deviation, and the second difference's std in units of
# the white noise's: sqrt(1 + 1/4 + 1/4).
_MAD_TO_STD = 1.4826
_SECOND_DIFFERENCE_GAIN = np.sqrt(1.5)


def second_differences(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Second differences of a depth map (H, W) metres (0 or non-finite: unknown) along rows and along
    columns, each (H, W) with NaN where a triple has an unknown depth or leaves the map; the value of a
    pixel is that of the triple centred on it."""
    z = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float64)
    rows = np.full_like(z, np.nan)
    cols = np.full_like(z, np.nan)
    rows[1:-1, :] = z[1:-1, :] - 0.5 * (z[:-2, :] + z[2:, :])
    cols[:, 1:-1] = z[:, 1:-1] - 0.5 * (z[:, :-2] + z[:, 2:])
    return rows, cols


def white_noise(depth: np.ndarray, pixels: np.ndarray) -> float:
    """Robust std (metres) of the white noise of a depth map (H, W) over the pixels (H, W) bool, from the
    `second_differences` of the triples centred on them (read on the pixels' bounding box and a margin of
    one pixel); 0 when fewer than MIN_TRIPLES of those triples are valid."""
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    if not len(rows):
        return 0.0
    height, width = depth.shape
    top, left = max(rows[0] - 1, 0), max(cols[0] - 1, 0)
    window = np.s_[top : min(rows[-1] + 2, height), left : min(cols[-1] + 2, width)]
    inside = pixels[window]
    values = np.concatenate([d[inside] for d in second_differences(depth[window])])
    # A triple leaving the window leaves the image: the margin keeps every other one.
    values = values[np.isfinite(values)]
    if len(values) < MIN_TRIPLES:
        return 0.0
    deviation = np.median(np.abs(values - np.median(values)))
    return float(_MAD_TO_STD * deviation / _SECOND_DIFFERENCE_GAIN)
