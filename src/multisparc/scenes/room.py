"""The room around a synthetic scene: a rectangular floor plan and its planes in the camera frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multisparc.render import Plane, Room, Texture
from multisparc.scenes.appearance import random_colour
from multisparc.scenes.camera_rig import WORLD_UP, CameraRig
from multisparc.scenes.config import SceneConfig


@dataclass(frozen=True)
class RoomPlan:
    """An axis-aligned rectangular room, world frame: floor x in [lower[0], upper[0]], z in
    [lower[1], upper[1]] (metres) at y = 0, ceiling at y = ceiling."""

    lower: np.ndarray
    upper: np.ndarray
    ceiling: float

    @property
    def centre(self) -> np.ndarray:
        """(3,) floor centre, world frame."""
        x, z = (self.lower + self.upper) / 2
        return np.array([x, 0.0, z])


@dataclass(frozen=True)
class WallLine:
    """Where one wall of the room must stand: the vertical plane world coordinate `axis` (0: x, 1: z)
    = `position` (metres), on the room's upper side along that axis when `side` is +1, lower when -1."""

    axis: int
    side: int
    position: float


def plan_room(
    contents_xz: np.ndarray, top: float, config: SceneConfig, rng: np.random.Generator, wall: WallLine | None = None
) -> RoomPlan:
    """A room of sides U(room_size) holding every point of contents_xz (M, 2) (world x, z: the camera
    and the footprint corners) `wall_margin` from its walls, grown where they do not fit; the
    contents sit at a random place inside. Ceiling U(ceiling_height), at least 0.2 m above `top`
    (the camera and the tallest object, metres).

    `wall`: one wall stands there instead (objects backed against it; the contents lie on its inner
    side), and the room grows away from it. None draws the same numbers from `rng` as a given wall.
    """
    low = contents_xz.min(axis=0) - config.wall_margin
    high = contents_xz.max(axis=0) + config.wall_margin
    if wall is not None:
        (high if wall.side > 0 else low)[wall.axis] = wall.position
    slack = np.maximum(rng.uniform(*config.room_size, 2) - (high - low), 0.0)
    before = rng.uniform(size=2) * slack
    if wall is not None:
        # All the slack on the far side: the wall stays where it was asked.
        before[wall.axis] = slack[wall.axis] if wall.side > 0 else 0.0
    ceiling = max(rng.uniform(*config.ceiling_height), top + 0.2)
    return RoomPlan(low - before, high + slack - before, ceiling)


def room_in_camera(plan: RoomPlan, rig: CameraRig, rng: np.random.Generator) -> Room:
    """The planned room as analytic planes in the camera frame, with random materials: a planked
    floor, light walls (some striped), a near-white ceiling."""
    (x0, z0), (x1, z1) = plan.lower, plan.upper

    def plane(point: tuple[float, float, float], inward: tuple[float, float, float], albedo, texture) -> Plane:
        return Plane(rig.to_camera(np.array([point]))[0], rig.world_to_camera @ np.array(inward), albedo, texture)

    floor_texture = Texture("planks", period=rng.uniform(0.1, 0.3), contrast=rng.uniform(0.03, 0.12))
    wall_texture = Texture("stripes", period=rng.uniform(0.05, 0.5), contrast=0.05) if rng.uniform() < 0.3 else None
    wall_albedo = random_colour(rng, (0.0, 0.25), (0.6, 0.95))
    walls = tuple(
        plane(point, inward, wall_albedo, wall_texture or Texture())
        for point, inward in (
            ((x0, 0.0, 0.0), (1.0, 0.0, 0.0)),
            ((x1, 0.0, 0.0), (-1.0, 0.0, 0.0)),
            ((0.0, 0.0, z0), (0.0, 0.0, 1.0)),
            ((0.0, 0.0, z1), (0.0, 0.0, -1.0)),
        )
    )
    return Room(
        floor=plane((0.0, 0.0, 0.0), tuple(WORLD_UP), random_colour(rng, (0.1, 0.6), (0.2, 0.8)), floor_texture),
        walls=walls,
        ceiling=plane(
            (0.0, plan.ceiling, 0.0), (0.0, -1.0, 0.0), random_colour(rng, (0.0, 0.1), (0.8, 1.0)), Texture()
        ),
    )
