"""How much of each object the camera sees, from surface samples instead of a frame.

Each object's surface samples are projected and rounded to pixels. Truncation is the share of samples
that land outside the image (or behind the camera). For the others, sparse ray casting over all objects
tells whether the pixel under a sample shows that object: since every sample lies inside its object's
silhouette, the share that does is the unoccluded share of the silhouette (1 for an object in plain
view, as the renderer's full-frame `visible_fractions`). The 2D box spans the sample pixels that do.

The fraction needs a few hundred samples, the box many more (its edges sit on thin parts), but only
near its edges. So one ray cast takes the fraction samples and, of the many box samples, those within
a few pixels of the edges of their in-image box: where an edge shows the object (it is not occluded
there), the box edge is exactly that of all visible box samples; where an occluder hides it, the box
ends at the outermost visible sample cast. The room is left out of the cast: camera and objects are
inside it, so it hides nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from multisparc.render import PlacedObject, RayCaster, distinct_pixels, pixel_directions

# Samples nearer than this (metres, z) count as behind the camera.
_NEAR = 1e-3
# Width (pixels) of the band along each edge of an object's in-image samples whose samples are cast.
_EDGE_BAND = 4


@dataclass(frozen=True)
class Visibility:
    """visible_fraction, truncation in [0, 1]; box (4,) [x1, y1, x2, y2] pixels, None if unseen."""

    visible_fraction: float
    truncation: float
    box: np.ndarray | None


@dataclass(frozen=True)
class _CastSamples:
    """The in-image samples of one object that are ray cast: pixels (M, 2) int64 (col, row),
    for_fraction (M,) bool (the fraction samples among them), and `in_image`, the count of all its
    in-image samples."""

    pixels: np.ndarray
    for_fraction: np.ndarray
    in_image: int


def _samples_to_cast(
    obj: PlacedObject, points: np.ndarray, fraction_count: int, K: np.ndarray, width: int, height: int
) -> _CastSamples:
    """The object's samples (M, 3) CAD frame that project into the image and are cast: the first
    `fraction_count` of them and those near the edges of their box. Projected in float32: pixels only
    need to be whole."""
    to_image = ((K @ obj.R) * obj.s).T.astype(np.float32)
    uvw = points @ to_image + (K @ obj.t).astype(np.float32)
    depth = uvw[:, 2]
    in_front = depth > _NEAR
    depth = np.where(in_front, depth, np.float32(1.0))
    cols, rows = np.rint(uvw[:, 0] / depth), np.rint(uvw[:, 1] / depth)
    inside = (in_front & (cols >= 0) & (cols <= width - 1) & (rows >= 0) & (rows <= height - 1)).nonzero()[0]
    if not len(inside):
        return _CastSamples(np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=bool), 0)
    cols, rows = cols.take(inside), rows.take(inside)
    for_fraction = inside < fraction_count
    near_edge = (cols <= cols.min() + _EDGE_BAND) | (cols >= cols.max() - _EDGE_BAND)
    near_edge |= (rows <= rows.min() + _EDGE_BAND) | (rows >= rows.max() - _EDGE_BAND)
    cast = (for_fraction | near_edge).nonzero()[0]
    pixels = np.stack([cols.take(cast), rows.take(cast)], axis=1).astype(np.int64)
    return _CastSamples(pixels, for_fraction.take(cast), len(inside))


def estimate_visibility(
    caster: RayCaster,
    objects: Sequence[PlacedObject],
    surface_points: Sequence[np.ndarray],
    K: np.ndarray,
    width: int,
    height: int,
    fraction_samples: int | None = None,
) -> list[Visibility]:
    """Visibility of each object given its surface samples (M_i, 3) in its CAD frame, metres (in random
    order, as `CadIndex.points` gives them).

    K (3, 3) intrinsics; width x height image. The visible fraction comes from the first
    `fraction_samples` samples of each object (default: all), the truncation and the box from all (see
    the module docstring). One sparse ray cast over all objects.
    """
    if not objects:
        return []
    fraction_count = max(len(points) for points in surface_points) if fraction_samples is None else fraction_samples
    samples = [
        _samples_to_cast(obj, points, fraction_count, K, width, height)
        for obj, points in zip(objects, surface_points, strict=True)
    ]
    counts = [len(cast.pixels) for cast in samples]
    owners = np.repeat([obj.instance_id for obj in objects], counts)
    pixels = np.concatenate([cast.pixels for cast in samples])
    # Samples often round to the same pixel (a quarter of them in typical scenes): each is cast once.
    distinct, slot = distinct_pixels(pixels[:, 1] * width + pixels[:, 0], width * height)
    cast_pixels = np.stack([distinct % width, distinct // width], axis=1)
    seen = caster.instances(objects, None, np.zeros((3, 1)), pixel_directions(K, cast_pixels)).take(slot) == owners
    result = []
    for cast, points, shown in zip(samples, surface_points, np.split(seen, np.cumsum(counts)[:-1]), strict=True):
        fraction_total = int(cast.for_fraction.sum())
        visible = cast.pixels[shown]
        box = np.concatenate([visible.min(axis=0), visible.max(axis=0)]).astype(np.float64) if len(visible) else None
        result.append(
            Visibility(
                visible_fraction=int((shown & cast.for_fraction).sum()) / fraction_total if fraction_total else 0.0,
                truncation=1.0 - cast.in_image / len(points),
                box=box,
            )
        )
    return result
