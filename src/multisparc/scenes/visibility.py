"""How much of each object the camera sees, from a few hundred surface samples instead of a frame.

Each object's surface samples are projected and rounded to pixels. Truncation is the share of samples
that land outside the image (or behind the camera). For the others, one sparse ray cast over all
objects tells whether the pixel under the sample shows that object: since every sample lies inside its
object's silhouette, the share that does is the unoccluded share of the silhouette (1 for an object in
plain view, as the renderer's full-frame `visible_fractions`). The 2D box spans the pixels that do.
The room is left out of the cast: camera and objects are inside it, so it hides nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from multisparc.render import PlacedObject, RayCaster, pixel_rays

# Samples nearer than this (metres, z) count as behind the camera.
_NEAR = 1e-3


@dataclass(frozen=True)
class Visibility:
    """visible_fraction, truncation in [0, 1]; box (4,) [x1, y1, x2, y2] pixels, None if unseen."""

    visible_fraction: float
    truncation: float
    box: np.ndarray | None


def estimate_visibility(
    caster: RayCaster,
    objects: Sequence[PlacedObject],
    surface_points: Sequence[np.ndarray],
    K: np.ndarray,
    width: int,
    height: int,
) -> list[Visibility]:
    """Visibility of each object given its surface samples (M_i, 3) in its CAD frame, metres.

    K (3, 3) intrinsics; width x height image. One ray cast of the in-image samples of all objects.
    """
    if not objects:
        return []
    pixel_sets, owners, counts = [], [], []
    for obj, points in zip(objects, surface_points, strict=True):
        camera = obj.t + (obj.s * points) @ obj.R.T
        in_front = camera[:, 2] > _NEAR
        uv = camera[in_front] @ K.T
        pixels = np.rint(uv[:, :2] / uv[:, 2:]).astype(np.int64)
        inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
        pixel_sets.append(pixels[inside])
        owners.append(np.full(int(inside.sum()), obj.instance_id))
        counts.append(len(points))
    pixels = np.concatenate(pixel_sets)
    directions = pixel_rays(K, pixels)
    seen = caster.cast(objects, None, np.zeros_like(directions), directions).instance == np.concatenate(owners)
    result, start = [], 0
    for object_pixels, total in zip(pixel_sets, counts, strict=True):
        stop = start + len(object_pixels)
        visible = object_pixels[seen[start:stop]]
        start = stop
        box = np.concatenate([visible.min(axis=0), visible.max(axis=0)]).astype(np.float64) if len(visible) else None
        result.append(
            Visibility(
                visible_fraction=len(visible) / len(object_pixels) if len(object_pixels) else 0.0,
                truncation=1.0 - len(object_pixels) / total,
                box=box,
            )
        )
    return result
