"""Lambert shading with one directional light, ambient light and optional cast shadows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from multisparc.render.objects import PlacedObject
from multisparc.render.raycast import Hits, RayCaster
from multisparc.render.vectors import column, dot

# Shadow rays start this far (metres) off the surface along its normal, clear of the surface itself.
SHADOW_OFFSET = 1e-3


@dataclass(frozen=True)
class Lighting:
    """Light of a render.

    Attributes:
        towards_light: (3,) direction to the (infinitely far) light, camera frame; normalised here.
            The default comes from above, slightly left and from behind the camera.
        ambient: brightness of surfaces the light does not reach, in [0, 1].
        diffuse: brightness added by the light at normal incidence; ambient + diffuse <= 1 keeps white
            surfaces unsaturated.
        shadows: cast a shadow ray from every lit hit towards the light (objects cast shadows on
            objects and the room; room planes cast none).
        background: (3,) RGB in [0, 1] where no surface is hit.
    """

    towards_light: tuple[float, float, float] = (-0.3, -1.0, -0.6)
    ambient: float = 0.35
    diffuse: float = 0.65
    shadows: bool = True
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        direction = np.asarray(self.towards_light, dtype=np.float64)
        if direction.shape != (3,) or not np.all(np.isfinite(direction)) or not np.any(direction):
            raise ValueError(f"towards_light must be a non-zero 3-vector, got {self.towards_light!r}")
        object.__setattr__(self, "towards_light", tuple(float(v) for v in direction / np.linalg.norm(direction)))
        if not (0 <= self.ambient <= 1 and 0 <= self.diffuse <= 1):
            raise ValueError(f"ambient and diffuse must lie in [0, 1], got {self.ambient}, {self.diffuse}")
        background = np.asarray(self.background, dtype=np.float64)
        if background.shape != (3,) or np.any(background < 0) or np.any(background > 1):
            raise ValueError(f"background must be 3 numbers in [0, 1], got {self.background!r}")


DEFAULT_LIGHTING = Lighting()


def lit_mask(caster: RayCaster, objects: Sequence[PlacedObject], hits: Hits, lighting: Lighting) -> np.ndarray:
    """(N,) bool: whether the light reaches each hit (it faces the light and, with shadows, no object
    lies between it and the light)."""
    towards = np.asarray(lighting.towards_light)
    normal = hits.normal.T
    lit = hits.hit & (dot(normal, column(towards)) > 0)
    if lighting.shadows and objects:
        rows = lit.nonzero()[0]
        # Component-major (3, M); handed over as its (M, 3) view.
        starts = hits.point.T.take(rows, axis=1).astype(np.float64) + SHADOW_OFFSET * normal.take(rows, axis=1)
        lit[rows] = ~caster.occluded(objects, starts.T, towards)
    return lit


def shade(hits: Hits, lit: np.ndarray, lighting: Lighting) -> np.ndarray:
    """RGB (N, 3) float32 in [0, 1]: albedo * (ambient + diffuse * max(0, n . l)) where lit (N,) bool,
    albedo * ambient elsewhere, the background colour where nothing was hit."""
    cosine = np.clip(dot(hits.normal.T.astype(np.float64), column(np.asarray(lighting.towards_light))), 0.0, 1.0)
    brightness = lighting.ambient + lighting.diffuse * np.where(lit, cosine, 0.0)
    rgb = np.where(hits.hit[:, None], hits.albedo * brightness[:, None], np.asarray(lighting.background))
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)
