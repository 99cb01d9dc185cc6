"""Perception noise: what a depth sensor or depth/normal networks and an instance segmenter make of a
perfect render, at four named levels.

Per-pixel noise is a fixed function of (scene noise seed, pixel) (`multisparc.scenes.pixel_fields`),
so a sparse render with noise equals the full noisy frame at the same pixels:

- depth: `z' = S z (1 + e_scale F1) + O + e_offset F2 + (a + b z^2) N`, F smooth unit fields, N white
  unit normal noise (a sensor's error grows with the square of the distance), S = exp(sigma_S G1) and
  O = sigma_O G2 one per-image scale and offset (G standard normal draws of the seed: monocular metric
  depth is wrong mostly by such a scale); a share `dropout` of the pixels has unknown depth (0).
- normals: first, when the depth has a per-image offset, the normal of the surface that offset makes
  (a per-image scale is a scaling about the camera centre and turns no surface; normals estimated from
  the predicted depth carry its shape, not the true one); then
  `n' = normalize(n + field (F3, F4, F5) + sigma (N1, N2, N3))`, turned back towards the camera if
  the noise tipped it over.
- blur and misregistration: depth and normals are read at the pixel displaced by a smooth field of
  `geometry_shift` pixels plus a per-pixel random offset of up to `geometry_blur` pixels (a stochastic
  box blur: edges come out ragged and displaced like those of a network's prediction).
- masks: the instance map is read at the pixel displaced by a smooth field of `mask_shift` pixels
  (boundary wobble: erosion in some places, dilation in others), with holes where a smooth field
  exceeds the level that leaves `mask_holes` of the pixels out.

Detection-level noise (jittered boxes, dropped and spurious detections) lives in
`multisparc.scenes.detections`, also drawn from the scene's noise seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from enum import IntEnum
from typing import Any

import numpy as np
from scipy.special import ndtri

from multisparc.scenes.pixel_fields import (
    hashed_normal,
    hashed_normals,
    hashed_uniform,
    hashed_uniforms,
    smooth_field,
    smooth_fields,
)

# Wavelength ranges (pixels) of the smooth fields: depth/normal errors vary across the image, the
# geometry and mask displacements over a few object parts, mask holes are blobs of a few pixels.
ERROR_WAVELENGTHS = (150.0, 600.0)
GEOMETRY_SHIFT_WAVELENGTHS = (30.0, 150.0)
MASK_SHIFT_WAVELENGTHS = (20.0, 80.0)
HOLE_WAVELENGTHS = (8.0, 30.0)


class Stream(IntEnum):
    """The independent random fields of one noise seed."""

    DEPTH_SCALE = 1
    DEPTH_OFFSET = 2
    DEPTH_WHITE = 3
    DEPTH_DROPOUT = 4
    NORMAL_FIELD = 5  # and 6, 7
    NORMAL_WHITE = 8  # and 9, 10
    GEOMETRY_SHIFT = 11  # and 12
    GEOMETRY_BLUR = 13  # and 14
    MASK_SHIFT = 15  # and 16
    MASK_HOLES = 17
    DETECTIONS = 18
    DEPTH_IMAGE = 19


@dataclass(frozen=True)
class NoiseParams:
    """Parameters of one noise level (module docstring for the model). Lengths in metres, shifts in
    pixels, angles in radians (approximately: normal perturbations are added to unit vectors).

    depth_sigma_const, depth_sigma_quadratic: white depth noise std `a + b z^2` (a in m, b in 1/m).
    depth_scale_error: std of the smooth relative depth error. depth_offset_error: std of the smooth
    additive depth error. depth_image_scale: std of the log of the per-image depth scale.
    depth_image_offset: std of the per-image depth offset. depth_dropout: share of pixels with unknown depth.
    normal_sigma: std per component of white normal noise. normal_field: std per component of the
    smooth normal perturbation.
    geometry_shift: std of the smooth displacement of depth and normals. geometry_blur: radius of the
    per-pixel random offset of depth and normals.
    mask_shift: std of the smooth displacement of instance masks. mask_holes: share of pixels in holes.
    box_jitter: each box side moves by up to this fraction of the image width (x) or height (y),
    uniformly. maskless_rate: probability that a detection comes as a box without an instance mask
    (its mask is then the box). drop_rate: probability that a visible object is not detected. spurious_rate: mean
    number (Poisson) of false detections per image. detection_score, spurious_score: (low, high) of
    the uniform scores of true and false detections.
    """

    depth_sigma_const: float = 0.0
    depth_sigma_quadratic: float = 0.0
    depth_scale_error: float = 0.0
    depth_offset_error: float = 0.0
    depth_image_scale: float = 0.0
    depth_image_offset: float = 0.0
    depth_dropout: float = 0.0
    normal_sigma: float = 0.0
    normal_field: float = 0.0
    geometry_shift: float = 0.0
    geometry_blur: float = 0.0
    mask_shift: float = 0.0
    mask_holes: float = 0.0
    box_jitter: float = 0.0
    maskless_rate: float = 0.0
    drop_rate: float = 0.0
    spurious_rate: float = 0.0
    detection_score: tuple[float, float] = (1.0, 1.0)
    spurious_score: tuple[float, float] = (0.3, 0.7)

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("_score"):
                low, high = value
                if not 0 <= low <= high <= 1:
                    raise ValueError(f"noise {field.name} must be a (low, high) pair in [0, 1], got {value!r}")
                object.__setattr__(self, field.name, (float(low), float(high)))
            elif not (np.isfinite(value) and value >= 0):
                raise ValueError(f"noise {field.name} must be a finite number >= 0, got {value!r}")
        if self.maskless_rate > 1:
            raise ValueError(f"noise maskless_rate must lie in [0, 1], got {self.maskless_rate!r}")
        for name in ("depth_dropout", "mask_holes", "drop_rate"):
            if getattr(self, name) >= 1:
                raise ValueError(f"noise {name} must be below 1, got {getattr(self, name)!r}")


NOISE_LEVELS: dict[str, NoiseParams] = {
    # A perfect sensor and detector: the exact render, true boxes, score 1.
    "clean": NoiseParams(),
    # A good depth sensor (structured light at short range) and a well-trained segmenter.
    "mild": NoiseParams(
        depth_sigma_const=0.002,
        depth_sigma_quadratic=0.0015,
        depth_scale_error=0.01,
        depth_offset_error=0.005,
        depth_dropout=0.002,
        normal_sigma=0.02,
        normal_field=0.04,
        geometry_shift=0.5,
        geometry_blur=0.75,
        mask_shift=1.0,
        mask_holes=0.005,
        box_jitter=0.03,
        spurious_rate=0.1,
        detection_score=(0.8, 1.0),
    ),
    # Depth and normals predicted from the image, Mask R-CNN-like detections; boxes jittered by up to
    # 10 % of the image size as in SPARC's training.
    "realistic": NoiseParams(
        depth_sigma_const=0.005,
        depth_sigma_quadratic=0.004,
        depth_scale_error=0.04,
        depth_offset_error=0.02,
        depth_dropout=0.01,
        normal_sigma=0.06,
        normal_field=0.12,
        geometry_shift=1.5,
        geometry_blur=1.5,
        mask_shift=2.5,
        mask_holes=0.02,
        box_jitter=0.1,
        drop_rate=0.1,
        spurious_rate=0.3,
        detection_score=(0.5, 1.0),
        spurious_score=(0.3, 0.9),
    ),
}
# Depth predicted by a monocular metric depth network (wrong mostly by a per-image scale of about 7 % and
# a few cm of offset, with a smaller smooth error across the image), normals that follow that depth,
# detections of which half come as boxes without masks (a user's boxes, a box detector); otherwise as
# `realistic`.
NOISE_LEVELS["predicted"] = replace(
    NOISE_LEVELS["realistic"],
    depth_scale_error=0.02,
    depth_offset_error=0.01,
    depth_image_scale=0.07,
    depth_image_offset=0.03,
    maskless_rate=0.5,
)


class PerceptionNoise:
    """A noise level by name (`clean`, `mild`, `realistic`, `predicted`) or by parameters, with optional overrides:
    `PerceptionNoise("realistic", box_jitter=0.05)`.

    Every method maps clean values at pixels (N, 2) int (col, row) to noisy ones, deterministically
    given the noise `seed`.
    """

    def __init__(self, level: str | NoiseParams = "clean", **overrides: Any) -> None:
        if isinstance(level, NoiseParams):
            params, self.name = level, "custom"
        elif level in NOISE_LEVELS:
            params, self.name = NOISE_LEVELS[level], level
        else:
            raise ValueError(f"unknown noise level {level!r}; expected one of {', '.join(NOISE_LEVELS)}")
        unknown = sorted(set(overrides) - {field.name for field in fields(NoiseParams)})
        if unknown:
            raise ValueError(f"unknown noise parameter(s) {unknown}; expected some of {list(asdict(params))}")
        self.params = replace(params, **overrides)
        if overrides:
            self.name = f"{self.name}+custom"
        # The level of the hole field that a share `mask_holes` of a unit normal field exceeds.
        self._hole_level = -float(ndtri(self.params.mask_holes)) if self.params.mask_holes else np.inf

    def __repr__(self) -> str:
        return f"PerceptionNoise({self.name!r})"

    def _displaced(
        self, pixels: np.ndarray, seed: int, stream: Stream, shift: float, wavelengths, blur: float, size
    ) -> np.ndarray:
        """Pixels (N, 2) moved by a smooth field of std `shift` plus a uniform offset within `blur`,
        rounded and clamped into the width x height image."""
        if shift == 0 and blur == 0:
            return pixels
        # float32 is ample for offsets of a few pixels.
        moved = pixels.T.astype(np.float32)
        if shift:
            moved += shift * smooth_fields(seed, (stream, stream + 1), pixels, wavelengths)
        if blur:
            offset = hashed_uniforms(seed, (Stream.GEOMETRY_BLUR, Stream.GEOMETRY_BLUR + 1), pixels).astype(np.float32)
            moved += blur * (2.0 * offset - 1.0)
        limit = np.array(size, dtype=np.float32)[:, None] - 1
        return np.clip(np.rint(moved), 0, limit).astype(np.int64).T

    def geometry_pixels(self, pixels: np.ndarray, seed: int, width: int, height: int) -> np.ndarray:
        """(N, 2) int pixels whose clean depth and normal become the noisy ones of `pixels`."""
        p = self.params
        return self._displaced(
            pixels,
            seed,
            Stream.GEOMETRY_SHIFT,
            p.geometry_shift,
            GEOMETRY_SHIFT_WAVELENGTHS,
            p.geometry_blur,
            (width, height),
        )

    def mask_pixels(self, pixels: np.ndarray, seed: int, width: int, height: int) -> np.ndarray:
        """(N, 2) int pixels whose clean instance id becomes the noisy one of `pixels`."""
        return self._displaced(
            pixels, seed, Stream.MASK_SHIFT, self.params.mask_shift, MASK_SHIFT_WAVELENGTHS, 0.0, (width, height)
        )

    def mask_holes(self, pixels: np.ndarray, seed: int) -> np.ndarray:
        """(N,) bool: pixels in a mask hole (no instance)."""
        if self.params.mask_holes == 0:
            return np.zeros(len(pixels), dtype=bool)
        return smooth_field(seed, Stream.MASK_HOLES, pixels, HOLE_WAVELENGTHS) > self._hole_level

    def image_scale_offset(self, seed: int) -> tuple[float, float]:
        """The per-image depth scale S and offset O (metres) of `seed` (1 and 0 without them)."""
        p = self.params
        if not (p.depth_image_scale or p.depth_image_offset):
            return 1.0, 0.0
        log_scale, offset = np.random.default_rng([seed, Stream.DEPTH_IMAGE]).standard_normal(2)
        return float(np.exp(p.depth_image_scale * log_scale)), float(p.depth_image_offset * offset)

    def depth(self, depth: np.ndarray, pixels: np.ndarray, seed: int) -> np.ndarray:
        """Noisy (N,) float32 z-depth (metres, 0 = unknown) from clean depth (N,) at `pixels`.
        Computed in float32, the precision of the depth itself."""
        p = self.params
        z = depth.astype(np.float32)
        image_scale, image_offset = self.image_scale_offset(seed)
        scaled = z * np.float32(image_scale) if image_scale != 1.0 else z
        noisy = scaled
        if p.depth_scale_error or p.depth_offset_error:
            scale, offset = smooth_fields(seed, (Stream.DEPTH_SCALE, Stream.DEPTH_OFFSET), pixels, ERROR_WAVELENGTHS)
            noisy = scaled * (1.0 + p.depth_scale_error * scale) + p.depth_offset_error * offset
        if image_offset:
            noisy = noisy + np.float32(image_offset)
        if p.depth_sigma_const or p.depth_sigma_quadratic:
            sigma = p.depth_sigma_const + p.depth_sigma_quadratic * z * z
            noisy = noisy + sigma * hashed_normal(seed, Stream.DEPTH_WHITE, pixels)
        keep = (z > 0) & (noisy > 0)
        if p.depth_dropout:
            keep &= hashed_uniform(seed, Stream.DEPTH_DROPOUT, pixels) >= p.depth_dropout
        return np.where(keep, noisy, np.float32(0.0))

    def normals(
        self, normals: np.ndarray, pixels: np.ndarray, seed: int, K: np.ndarray, depth: np.ndarray | None = None
    ) -> np.ndarray:
        """Noisy (N, 3) float32 unit normals (camera frame, facing the camera, zero = unknown) from clean
        normals (N, 3) and clean z-depth (N,) metres (needed by a level with a per-image depth offset)
        at `pixels` under intrinsics K (3, 3). Computed in float32 (the normals' own precision) on
        component-major arrays; the result is the (N, 3) view of one."""
        p = self.params
        image_scale, image_offset = self.image_scale_offset(seed)
        if not (p.normal_field or p.normal_sigma or image_offset):
            return normals.astype(np.float32)
        n = normals.T.astype(np.float32)
        known = (n != 0).any(axis=0)
        # Viewing ray K^-1 [u, v, 1], written per component like everything here (elementwise bits).
        fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
        ray = np.ones((3, len(pixels)), dtype=np.float32)
        ray[0] = (pixels[:, 0].astype(np.float32) - cx) / fx
        ray[1] = (pixels[:, 1].astype(np.float32) - cy) / fy
        if image_offset:
            if depth is None:
                raise ValueError(f"noise level {self.name!r} has a per-image depth offset: normals() needs the depth")
            # The offset maps X to (S + O / z) X; the inverse transpose of that map's Jacobian turns a
            # normal n into n + O (r . n) / (S z) e_z, r the ray above.
            z = np.where(depth > 0, depth, np.inf).astype(np.float32)
            n[2] += np.float32(image_offset / image_scale) * (ray * n).sum(axis=0) / z
        streams = tuple(Stream.NORMAL_FIELD + axis for axis in range(3))
        if p.normal_field:
            n += p.normal_field * smooth_fields(seed, streams, pixels, ERROR_WAVELENGTHS)
        if p.normal_sigma:
            n += p.normal_sigma * hashed_normals(seed, tuple(Stream.NORMAL_WHITE + axis for axis in range(3)), pixels)
        n /= np.sqrt((n * n).sum(axis=0))
        ray /= np.sqrt((ray * ray).sum(axis=0))
        # A normal tipped away from the camera is mirrored about the plane normal to the ray.
        towards = np.maximum((n * ray).sum(axis=0), 0.0)
        n -= 2.0 * towards * ray
        return np.where(known, n, np.float32(0.0)).T
