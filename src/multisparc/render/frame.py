"""Rendering pinhole views: any set of pixels, or the full frame as the set of all pixels.

The pixel in column i, row j has its centre at (u, v) = (i, j) and looks along K^-1 [u, v, 1]
(OpenCV, ScanNet). `render_full` is `render_pixels` of every pixel, so a sparse render equals the
full frame at the same pixels bit for bit: every per-ray computation is elementwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from multisparc.render.objects import PlacedObject
from multisparc.render.raycast import RayCaster
from multisparc.render.room import Room
from multisparc.render.shading import DEFAULT_LIGHTING, Lighting, lit_mask, shade
from multisparc.render.vectors import dot


@dataclass
class PixelSamples:
    """A render at N pixels.

    depth: (N,) float32 z-depth in metres, 0 where nothing is hit. normals: (N, 3) float32 unit,
    camera frame, facing the camera, zero where nothing is hit. instance: (N,) int32 instance id,
    0 for the room, -1 for nothing. rgb: (N, 3) float32 in [0, 1], quantised to 8 bits (k / 255),
    exactly what reading back the full frame's uint8 image gives.
    """

    depth: np.ndarray
    normals: np.ndarray
    instance: np.ndarray
    rgb: np.ndarray


@dataclass
class Frame:
    """A full render of H x W pixels.

    rgb: (H, W, 3) uint8. depth: (H, W) float32 z-depth, metres, 0 = nothing hit.
    normals: (H, W, 3) float32 unit, camera frame, facing the camera, zero = nothing hit.
    instance: (H, W) int32 instance id, 0 for the room, -1 for nothing.
    """

    rgb: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    instance: np.ndarray


def check_intrinsics(K: np.ndarray) -> np.ndarray:
    """K as float64 (3, 3) pinhole matrix with last row [0, 0, 1], or ValueError."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or np.abs(K[2] - (0.0, 0.0, 1.0)).max() > 1e-6:
        raise ValueError(f"K must be a finite 3x3 pinhole matrix with last row [0, 0, 1], got {K.tolist()}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"K must have positive focal lengths, got fx={K[0, 0]}, fy={K[1, 1]}")
    return K


def pixel_directions(K: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Unit viewing rays (3, N) component-major, camera frame, of integer pixels (N, 2) (col, row)
    under intrinsics K (3, 3): normalize(K^-1 [u, v, 1]), written elementwise so that every ray gets
    the same bits in any batch."""
    inverse = np.linalg.inv(K)
    rays = inverse[:, 0:1] * pixels[:, 0].astype(np.float64) + inverse[:, 1:2] * pixels[:, 1].astype(np.float64)
    rays += inverse[:, 2:3]
    return rays / np.sqrt(dot(rays, rays))


def distinct_pixels(linear: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values (M,) sorted of `linear` (N,) int in [0, size) and the index (N,) of each
    value among them, as `np.unique(..., return_inverse=True)`, by marking a table of `size` entries
    (pixel indices of one image: several times faster than sorting)."""
    marked = np.zeros(size, dtype=bool)
    marked[linear] = True
    distinct = marked.nonzero()[0]
    slot = np.empty(size, dtype=np.int32)
    slot[distinct] = np.arange(len(distinct))
    return distinct, slot.take(linear)


def pixel_rays(K: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Unit viewing rays (N, 3) camera frame of integer pixels (N, 2) (col, row) under intrinsics K (3, 3).

    The numpy twin of `multisparc.geometry.pixel_bearings`, kept elementwise for batch-independent bits.
    """
    return pixel_directions(K, pixels).T


def _check_pixels(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.shape[1] != 2 or not np.issubdtype(pixels.dtype, np.integer):
        raise ValueError(f"pixels must be an integer (N, 2) array of (col, row), got {pixels.dtype} {pixels.shape}")
    return pixels


def render_pixels(
    caster: RayCaster,
    objects: Sequence[PlacedObject],
    room: Room | None,
    K: np.ndarray,
    pixels: np.ndarray,
    lighting: Lighting = DEFAULT_LIGHTING,
    shaded: np.ndarray | None = None,
) -> PixelSamples:
    """Render the scene at pixels (N, 2) int (col, row); pixels outside the image are rendered too
    (their rays are well defined). K (3, 3) intrinsics.

    shaded: (N,) bool, the pixels whose colour is needed: textures, light and shadow rays are computed
    only there, the others get rgb 0 (depth, normals and instance are computed everywhere). Default:
    every pixel.
    """
    K = check_intrinsics(K)
    pixels = _check_pixels(pixels)
    if shaded is not None:
        shaded = np.asarray(shaded)
        if shaded.shape != (len(pixels),) or shaded.dtype != np.bool_:
            raise ValueError(f"shaded must be a bool (N,) array for N = {len(pixels)} pixels, got {shaded.shape}")
    hits = caster.cast_unit(objects, room, np.zeros((3, 1)), pixel_directions(K, pixels), albedo_rows=shaded)
    rows = np.arange(len(pixels)) if shaded is None else shaded.nonzero()[0]
    coloured = hits if shaded is None else hits.take(rows)
    rgb8 = np.round(shade(coloured, lit_mask(caster, objects, coloured, lighting), lighting) * 255.0)
    rgb = np.zeros((len(pixels), 3), dtype=np.float32)
    rgb[rows] = rgb8 / 255.0
    return PixelSamples(depth=hits.point[:, 2].copy(), normals=hits.normal, instance=hits.instance, rgb=rgb)


def image_pixels(width: int, height: int) -> np.ndarray:
    """(H * W, 2) int64 (col, row) of every pixel, row-major (the order of an image's flattened pixels)."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    rows, cols = np.divmod(np.arange(width * height), width)
    return np.stack([cols, rows], axis=1)


def render_full(
    caster: RayCaster,
    objects: Sequence[PlacedObject],
    room: Room | None,
    K: np.ndarray,
    width: int,
    height: int,
    lighting: Lighting = DEFAULT_LIGHTING,
) -> Frame:
    """Render the full width x height frame (as `render_pixels` of every pixel)."""
    samples = render_pixels(caster, objects, room, K, image_pixels(width, height), lighting)
    return Frame(
        rgb=np.round(samples.rgb * 255.0).astype(np.uint8).reshape(height, width, 3),
        depth=samples.depth.reshape(height, width),
        normals=samples.normals.reshape(height, width, 3),
        instance=samples.instance.reshape(height, width),
    )
