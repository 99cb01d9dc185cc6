"""Random materials and light for synthetic scenes, so that rendered RGB varies like real rooms do."""

from __future__ import annotations

import colorsys

import numpy as np

from multisparc.render import PATTERNS, Lighting, Texture
from multisparc.scenes.camera_rig import CameraRig

# Object patterns: half the objects plain, the rest one of the procedural patterns.
_OBJECT_PATTERNS = ("plain",) * (len(PATTERNS) - 1) + tuple(p for p in PATTERNS if p != "plain")


def random_colour(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
    """(3,) RGB in [0, 1] of a uniform hue and the given saturation and value ranges."""
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*saturation), rng.uniform(*value)))


def random_object_material(rng: np.random.Generator) -> tuple[np.ndarray, Texture]:
    """Albedo (3,) in [0, 1] and a procedural texture for a piece of furniture."""
    albedo = random_colour(rng, (0.05, 0.7), (0.25, 0.95))
    pattern = _OBJECT_PATTERNS[rng.integers(len(_OBJECT_PATTERNS))]
    texture = Texture(pattern, period=rng.uniform(0.03, 0.3), contrast=rng.uniform(0.05, 0.35))
    return albedo, texture


def random_lighting(rig: CameraRig, shadows: bool, rng: np.random.Generator) -> Lighting:
    """A light from above (30 to 80 deg over the horizon, any azimuth) with random ambient and diffuse
    parts; its direction is given in the camera frame."""
    elevation = np.deg2rad(rng.uniform(30.0, 80.0))
    azimuth = rng.uniform(-np.pi, np.pi)
    towards_world = np.array(
        [np.cos(elevation) * np.cos(azimuth), np.sin(elevation), np.cos(elevation) * np.sin(azimuth)]
    )
    ambient = rng.uniform(0.25, 0.5)
    return Lighting(
        towards_light=tuple(rig.world_to_camera @ towards_world),
        ambient=ambient,
        diffuse=rng.uniform(0.4, 1.0 - ambient),
        shadows=shadows,
    )
