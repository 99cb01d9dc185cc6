"""A sampled synthetic scene: camera, room, light and furniture, every pose in the camera frame."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from multisparc.datasets.bundle import Camera
from multisparc.render import Lighting, PlacedObject, Room, Texture


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One placed CAD model and how much of it the camera sees.

    instance_id: >= 1, its value in instance maps. cad_id, category, sym: from the CAD index.
    R (3, 3), t (3,), s (3,): camera-frame pose, `X_cam = t + R @ (s * X_cad)`, metres.
    albedo (3,) in [0, 1] and texture: its material.
    box: (4,) [x1, y1, x2, y2] pixels (inclusive pixel centres) of its visible part, or None.
    visible_fraction: share of its in-image surface samples whose pixel shows it (1 = unoccluded).
    truncation: share of its surface samples projecting outside the image (or behind the camera).
    detected: whether it is visible enough to be detected (the scene config's thresholds); objects
    that are not still occlude the others.
    """

    instance_id: int
    cad_id: str
    category: str
    sym: str
    R: np.ndarray
    t: np.ndarray
    s: np.ndarray
    albedo: np.ndarray
    texture: Texture
    box: np.ndarray | None
    visible_fraction: float
    truncation: float
    detected: bool

    @cached_property
    def placed(self) -> PlacedObject:
        """The object as the renderer draws it."""
        return PlacedObject(self.instance_id, self.cad_id, self.R, self.t, self.s, self.albedo, self.texture)


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """A synthetic image's world.

    camera: intrinsics, image size, cam_to_world (4, 4) (world: Y up, floor y = 0, origin at the
    room's floor centre) and gravity `up` (3,) in the camera frame. room: planes in the camera frame.
    lighting: the renderer's light. objects: every placed object, detected or not, instance ids
    1..n in order. noise_seed: the seed of this scene's perception noise (`multisparc.scenes.noise`).
    """

    camera: Camera
    room: Room
    lighting: Lighting
    objects: tuple[SceneObject, ...]
    noise_seed: int

    @property
    def detected(self) -> list[SceneObject]:
        """The objects visible enough to be detected, in order."""
        return [obj for obj in self.objects if obj.detected]

    @cached_property
    def placed_objects(self) -> list[PlacedObject]:
        """Every object (detected or not) as the renderer draws it."""
        return [obj.placed for obj in self.objects]
