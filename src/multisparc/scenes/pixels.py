"""Observations of synthetic scenes with perception noise: sparse pixel sets and full frames.

`RenderedPixelSource` answers the `PixelSource` protocol by ray casting only the asked pixels (and the
pixels their noise reads from); `render_scene_frame` renders the whole image once and applies the same
noise by lookup. Both go through `_perceive`, and the renderer's sparse and full results agree bit for
bit, so the two agree exactly at every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multisparc.datasets.pixels import PixelData
from multisparc.render import (
    BACKGROUND_INSTANCE,
    Frame,
    PixelSamples,
    RayCaster,
    distinct_pixels,
    image_pixels,
    render_full,
    render_pixels,
)
from multisparc.scenes.detections import SyntheticDetection, perceive_detections
from multisparc.scenes.noise import PerceptionNoise
from multisparc.scenes.scene import SyntheticScene


@dataclass
class SceneFrame(Frame):
    """A full noisy frame of a synthetic scene (fields as `multisparc.render.Frame`): rgb is the clean
    render; depth, normals carry the perception noise; instance is the noisy instance map the masks
    come from (-1 in mask holes). detections: the detector's output for this frame."""

    detections: list[SyntheticDetection]


@dataclass
class _Perceived:
    """Noisy values at N pixels: rgb (N, 3) as rendered (float32 in [0, 1] from a sparse render, uint8
    from a frame; colour carries no noise), depth (N,) float32, normals (N, 3) float32, instance (N,)
    int32 (-1 in mask holes)."""

    rgb: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    instance: np.ndarray


def _perceive(
    clean: PixelSamples,
    at_pixel: np.ndarray,
    at_geometry: np.ndarray,
    at_mask: np.ndarray,
    pixels: np.ndarray,
    noise: PerceptionNoise,
    seed: int,
    K: np.ndarray,
) -> _Perceived:
    """Apply `noise` at pixels (N, 2) to the clean render values `clean` (flat arrays of any length),
    indexed by `at_pixel` (N,) (the pixel itself), `at_geometry` (N,) (where its depth and normal are
    read) and `at_mask` (N,) (where its instance is read)."""
    holes = noise.mask_holes(pixels, seed)
    geometry_depth = clean.depth.take(at_geometry)
    return _Perceived(
        rgb=clean.rgb.take(at_pixel, axis=0),
        depth=noise.depth(geometry_depth, pixels, seed),
        normals=noise.normals(clean.normals.T.take(at_geometry, axis=1).T, pixels, seed, K, geometry_depth),
        instance=np.where(holes, BACKGROUND_INSTANCE, clean.instance.take(at_mask)).astype(np.int32),
    )


class RenderedPixelSource:
    """`PixelSource` of a synthetic scene: renders just the asked pixels, with perception noise.

    `detections` is the detector's output (`perceive_detections`); `detection_index` k of `sample`
    indexes it (at the `clean` level: the scene's detected objects in order). Deterministic given the
    scene, the noise and `seed` (default: the scene's noise seed).
    """

    def __init__(
        self, scene: SyntheticScene, caster: RayCaster, noise: PerceptionNoise | None = None, seed: int | None = None
    ) -> None:
        self.scene = scene
        self.caster = caster
        self.noise = noise if noise is not None else PerceptionNoise("clean")
        self.seed = scene.noise_seed if seed is None else seed
        self.K = scene.camera.K
        self.width = scene.camera.width
        self.height = scene.camera.height
        self.detections = perceive_detections(scene, self.noise, self.seed)

    def _check(self, pixels: np.ndarray, detection_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pixels, detection_index = np.asarray(pixels), np.asarray(detection_index)
        if pixels.ndim != 2 or pixels.shape[1] != 2 or not np.issubdtype(pixels.dtype, np.integer):
            raise ValueError(f"pixels must be an integer (N, 2) array of (col, row), got {pixels.dtype} {pixels.shape}")
        if detection_index.shape != (len(pixels),) or not np.issubdtype(detection_index.dtype, np.integer):
            raise ValueError(
                f"detection_index must be (N,) integers for N = {len(pixels)} pixels, got {detection_index.shape}"
            )
        outside = (pixels[:, 0] < 0) | (pixels[:, 0] >= self.width) | (pixels[:, 1] < 0) | (pixels[:, 1] >= self.height)
        if outside.any():
            raise ValueError(f"{int(outside.sum())} pixel(s) lie outside the {self.width} x {self.height} image")
        if len(detection_index) and (detection_index.min() < 0 or detection_index.max() >= len(self.detections)):
            raise ValueError(f"detection_index must lie in [0, {len(self.detections)}), the scene's detections")
        return pixels.astype(np.int64), detection_index

    def sample(self, pixels: np.ndarray, detection_index: np.ndarray) -> PixelData:
        """Values at pixels (N, 2) int (col, row); mask of detection `detection_index` (N,) int."""
        pixels, detection_index = self._check(pixels, detection_index)
        geometry = self.noise.geometry_pixels(pixels, self.seed, self.width, self.height)
        mask_pixels = self.noise.mask_pixels(pixels, self.seed, self.width, self.height)
        # One cast for every distinct pixel read: without noise the three sets are the same.
        linear = np.concatenate([p[:, 1] * self.width + p[:, 0] for p in (pixels, geometry, mask_pixels)])
        distinct, where = distinct_pixels(linear, self.width * self.height)
        count = len(pixels)
        # Colour (textures, light, shadow rays) only where it is read: at the asked pixels themselves.
        shaded = np.zeros(len(distinct), dtype=bool)
        shaded[where[:count]] = True
        clean = render_pixels(
            self.caster,
            self.scene.placed_objects,
            self.scene.room,
            self.K,
            np.stack([distinct % self.width, distinct // self.width], axis=1),
            self.scene.lighting,
            shaded,
        )
        seen = _perceive(
            clean, where[:count], where[count : 2 * count], where[2 * count :], pixels, self.noise, self.seed, self.K
        )
        mask = np.zeros(count, dtype=np.float32)
        for k, detection in enumerate(self.detections):
            rows = (detection_index == k).nonzero()[0]
            if len(rows):
                mask[rows] = detection.mask(seen.instance.take(rows), pixels.take(rows, axis=0))
        return PixelData(rgb=seen.rgb, depth=seen.depth, normals=seen.normals, mask=mask)


def render_scene_frame(
    scene: SyntheticScene, caster: RayCaster, noise: PerceptionNoise | None = None, seed: int | None = None
) -> SceneFrame:
    """The full frame of `scene` with the same perception noise as `RenderedPixelSource(scene, caster,
    noise, seed)`: equal to it at every pixel."""
    noise = noise if noise is not None else PerceptionNoise("clean")
    seed = scene.noise_seed if seed is None else seed
    camera = scene.camera
    frame = render_full(caster, scene.placed_objects, scene.room, camera.K, camera.width, camera.height, scene.lighting)
    flat = PixelSamples(
        depth=frame.depth.reshape(-1),
        normals=frame.normals.reshape(-1, 3),
        instance=frame.instance.reshape(-1),
        rgb=frame.rgb.reshape(-1, 3),
    )
    pixels = image_pixels(camera.width, camera.height)

    def linear(p: np.ndarray) -> np.ndarray:
        return p[:, 1] * camera.width + p[:, 0]

    seen = _perceive(
        flat,
        linear(pixels),
        linear(noise.geometry_pixels(pixels, seed, camera.width, camera.height)),
        linear(noise.mask_pixels(pixels, seed, camera.width, camera.height)),
        pixels,
        noise,
        seed,
        camera.K,
    )
    shape = (camera.height, camera.width)
    return SceneFrame(
        rgb=seen.rgb.reshape(*shape, 3),
        depth=seen.depth.reshape(shape),
        normals=seen.normals.reshape(*shape, 3),
        instance=seen.instance.reshape(shape),
        detections=perceive_detections(scene, noise, seed),
    )
