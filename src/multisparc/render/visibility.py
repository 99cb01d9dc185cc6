"""How much of each object a render shows: pixel counts, boxes and visible fractions.

The visible fraction of an object is its pixel count in the scene's instance map divided by its
pixel count when rendered alone (no room, no other objects): 1 for an object in plain view, less when
occluded, 0 when hidden. Pixels outside the image count as neither, so truncation by the image border
is not occlusion.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from multisparc.render.frame import check_intrinsics, image_pixels, pixel_directions
from multisparc.render.objects import PlacedObject
from multisparc.render.raycast import BACKGROUND_INSTANCE, RayCaster

# Near-plane depth (metres) for projecting bounding boxes; boxes reaching closer are not projected.
_NEAR = 1e-3


def _check_instance_map(instance: np.ndarray) -> np.ndarray:
    instance = np.asarray(instance)
    if instance.ndim != 2 or not np.issubdtype(instance.dtype, np.integer):
        raise ValueError(f"instance map must be an integer (H, W) array, got {instance.dtype} {instance.shape}")
    return instance


def object_pixel_stats(instance: np.ndarray, instance_ids: Iterable[int]) -> dict[int, int]:
    """Pixel count of each id in an (H, W) int instance map (0 for ids that do not appear)."""
    instance = _check_instance_map(instance)
    ids, counts = np.unique(instance, return_counts=True)
    by_id = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    return {int(i): by_id.get(int(i), 0) for i in instance_ids}


def instance_boxes(instance: np.ndarray, instance_ids: Iterable[int]) -> dict[int, list[int]]:
    """Tight box `[x1, y1, x2, y2]` (inclusive pixel centres: columns x1..x2, rows y1..y2) of each id in
    an (H, W) int instance map; ids without pixels are left out."""
    instance = _check_instance_map(instance)
    boxes = {}
    for i in instance_ids:
        mask = instance == i
        cols = np.flatnonzero(mask.any(axis=0))
        if len(cols):
            rows = np.flatnonzero(mask.any(axis=1))
            boxes[int(i)] = [int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])]
    return boxes


def _projected_window(
    caster: RayCaster, obj: PlacedObject, K: np.ndarray, width: int, height: int
) -> tuple[int, int, int, int]:
    """Pixel window (col0, row0, col1, row1), inclusive, holding the projection of the object's bounding
    box, clipped to the image; the whole image when the box reaches behind the near plane."""
    geometry = caster.geometry(obj.cad_key)
    corners = np.array(np.meshgrid(*zip(geometry.lower, geometry.upper, strict=True), indexing="ij")).reshape(3, -1)
    camera = (obj.t[:, None] + obj.R @ (corners * obj.s[:, None])).T
    if np.any(camera[:, 2] <= _NEAR):
        return 0, 0, width - 1, height - 1
    uv = camera @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    low = np.clip(np.floor(uv.min(axis=0)) - 1, 0, [width - 1, height - 1]).astype(int)
    high = np.clip(np.ceil(uv.max(axis=0)) + 1, 0, [width - 1, height - 1]).astype(int)
    return int(low[0]), int(low[1]), int(high[0]), int(high[1])


def render_object_alone(caster: RayCaster, obj: PlacedObject, K: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W) bool silhouette of one object rendered without room or other objects.

    Only the rays inside the projection of its bounding box are cast; they are the same rays as in
    `render_full`, so the silhouette contains the object's pixels of any render of the same camera.
    """
    K = check_intrinsics(K)
    col0, row0, col1, row1 = _projected_window(caster, obj, K, width, height)
    window = image_pixels(col1 - col0 + 1, row1 - row0 + 1) + np.array([col0, row0])
    instance = caster.instances([obj], None, np.zeros((3, 1)), pixel_directions(K, window))
    silhouette = np.zeros((height, width), dtype=bool)
    silhouette[window[:, 1], window[:, 0]] = instance != BACKGROUND_INSTANCE
    return silhouette


def visible_fractions(
    caster: RayCaster, objects: Sequence[PlacedObject], K: np.ndarray, instance: np.ndarray
) -> dict[int, float]:
    """Visible fraction in [0, 1] of each object given the scene's (H, W) instance map; 0 for an object
    that covers no pixel even alone."""
    instance = _check_instance_map(instance)
    height, width = instance.shape
    visible = object_pixel_stats(instance, [obj.instance_id for obj in objects])
    fractions = {}
    for obj in objects:
        alone = int(render_object_alone(caster, obj, K, width, height).sum())
        fractions[obj.instance_id] = visible[obj.instance_id] / alone if alone else 0.0
    return fractions
