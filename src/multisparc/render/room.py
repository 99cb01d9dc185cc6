"""The room around the furniture: a floor, up to four walls and a ceiling as analytic planes.

Planes live in the camera frame (OpenCV, metres) and are one-sided: each is seen only from the side
its normal points to (into the room, towards the camera). With the camera inside the room, the first
plane a ray meets from the front is the room surface it sees; a ceiling never hides the floor from a
ray that leaves the room through it. Room surfaces have instance id 0 in renders.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from multisparc.render.texture import PLAIN, Texture
from multisparc.render.vectors import column, cross, dot

MAX_WALLS = 4
_FLOOR_TEXTURE = Texture("planks", period=0.18, contrast=0.06)


def _vector3(value: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """value as a finite float64 (3,) array, or ValueError naming it."""
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (3,) or not np.isfinite(array).all():
        raise ValueError(f"{name} must be 3 finite numbers, got {value!r}")
    return array


def _albedo(value: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = _vector3(value, name)
    if (array < 0).any() or (array > 1).any():
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return array


@dataclass(frozen=True, eq=False)
class Plane:
    """One room surface.

    Attributes:
        point: (3,) a point on the plane, camera frame, metres.
        normal: (3,) the side the plane is seen from (into the room), camera frame; normalised here.
        albedo: (3,) RGB reflectance in [0, 1].
        texture: procedural pattern in the plane's own coordinates (see `local_coordinates`).
    """

    point: np.ndarray
    normal: np.ndarray
    albedo: np.ndarray = field(default_factory=lambda: np.full(3, 0.7))
    texture: Texture = PLAIN
    # (2, 3) in-plane unit axes, a fixed function of the normal so that textures do not swim between rays.
    _axes: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        normal = _vector3(self.normal, "plane normal")
        length = math.sqrt(float(normal @ normal))
        if length < 1e-9:
            raise ValueError(f"plane normal must be non-zero, got {self.normal!r}")
        normal = normal / length
        helper = np.zeros(3)
        helper[np.argmin(np.abs(normal))] = 1.0
        axis_a = cross(normal, helper)
        axis_a /= math.sqrt(float(axis_a @ axis_a))
        object.__setattr__(self, "point", _vector3(self.point, "plane point"))
        object.__setattr__(self, "normal", normal)
        object.__setattr__(self, "albedo", _albedo(self.albedo, "plane albedo"))
        object.__setattr__(self, "_axes", np.stack([axis_a, cross(normal, axis_a)]))

    def local_coordinates(self, points: np.ndarray) -> np.ndarray:
        """points (3, M) on the plane, camera frame -> (3, M) in-plane coordinates (a, b, 0), metres."""
        offset = points - column(self.point)
        axis_a, axis_b = self._axes
        return np.stack([dot(offset, column(axis_a)), dot(offset, column(axis_b)), np.zeros(points.shape[1])])


@dataclass(frozen=True, eq=False)
class Room:
    """Floor, up to MAX_WALLS walls and an optional ceiling, camera frame."""

    floor: Plane
    walls: tuple[Plane, ...] = ()
    ceiling: Plane | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "walls", tuple(self.walls))
        if len(self.walls) > MAX_WALLS:
            raise ValueError(f"a room has at most {MAX_WALLS} walls, got {len(self.walls)}")

    @property
    def planes(self) -> tuple[Plane, ...]:
        """Floor, walls, then the ceiling if any: the order of plane indices in `intersect_planes`."""
        return (self.floor, *self.walls, *([self.ceiling] if self.ceiling is not None else []))

    @cached_property
    def surface_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(3, P + 1) float32 normals and albedos of the planes, one column each, then a zero column
        (what a ray that meets no plane gathers with index -1)."""
        normals = np.stack([*(plane.normal for plane in self.planes), np.zeros(3)], axis=1)
        albedos = np.stack([*(plane.albedo for plane in self.planes), np.zeros(3)], axis=1)
        return normals.astype(np.float32), albedos.astype(np.float32)

    @classmethod
    def box(
        cls,
        up: Sequence[float] | np.ndarray,
        camera_height: float,
        wall_distances: Sequence[float | None] = (4.0, 3.0, 4.0, 3.0),
        wall_yaw: float = 0.0,
        ceiling_height: float | None = 2.6,
        floor_albedo: Sequence[float] = (0.55, 0.45, 0.35),
        wall_albedo: Sequence[float] = (0.8, 0.78, 0.74),
        ceiling_albedo: Sequence[float] = (0.9, 0.9, 0.9),
        floor_texture: Texture = _FLOOR_TEXTURE,
    ) -> Room:
        """A box-shaped room around a camera.

        Args:
            up: (3,) gravity-up direction in the camera frame (a level camera has (0, -1, 0)).
            camera_height: height of the camera above the floor, metres (> 0).
            wall_distances: horizontal distances from the camera to the walls ahead, right, behind
                and left, metres; None leaves that wall out. "Ahead" is the camera's viewing direction
                projected onto the floor and turned by `wall_yaw` radians about `up`.
            ceiling_height: height of the ceiling above the floor (> camera_height), or None.
        """
        up_unit = _vector3(up, "up")
        up_unit = up_unit / np.linalg.norm(up_unit)
        if camera_height <= 0:
            raise ValueError(f"camera_height must be positive, got {camera_height!r}")
        if len(wall_distances) != MAX_WALLS:
            raise ValueError(f"wall_distances needs 4 entries (ahead, right, behind, left), got {len(wall_distances)}")
        if ceiling_height is not None and ceiling_height <= camera_height:
            raise ValueError(f"ceiling_height {ceiling_height} must exceed camera_height {camera_height}")
        ahead = _horizontal_ahead(up_unit, wall_yaw)
        right = np.cross(-up_unit, ahead)
        floor = Plane(-camera_height * up_unit, up_unit, floor_albedo, floor_texture)
        walls = []
        for direction, distance in zip((ahead, right, -ahead, -right), wall_distances, strict=True):
            if distance is not None:
                if distance <= 0:
                    raise ValueError(f"wall distances must be positive, got {distance!r}")
                walls.append(Plane(distance * direction, -direction, wall_albedo))
        ceiling = None
        if ceiling_height is not None:
            ceiling = Plane((ceiling_height - camera_height) * up_unit, -up_unit, ceiling_albedo)
        return cls(floor, tuple(walls), ceiling)


def _horizontal_ahead(up: np.ndarray, yaw: float) -> np.ndarray:
    """The camera's z axis projected onto the floor (or its -y axis when looking straight down or up),
    turned by yaw radians about up (right-handed); unit (3,)."""
    for axis in (np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])):
        horizontal = axis - np.dot(axis, up) * up
        if np.linalg.norm(horizontal) > 1e-6:
            break
    horizontal /= np.linalg.norm(horizontal)
    # Rodrigues' formula for a vector perpendicular to the axis.
    return np.cos(yaw) * horizontal + np.sin(yaw) * np.cross(up, horizontal)


def intersect_planes(room: Room, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First room surface along each ray.

    origins: (3, N), or (3, 1) for one shared origin; directions: (3, N) unit; camera frame,
    component-major. Returns distance (N,) float64 along the ray in metres (inf where no plane is hit)
    and plane index (N,) int64 into `room.planes` (-1 where none is hit).

    A plane is met from its front side ahead of the origin where both its facing `n . d` and the
    origin's signed height `n . (p - o)` are negative; then the inverse distance `(n . d) / height` is
    positive, and the nearest such plane has the largest. Ties keep the first plane.
    """
    count = directions.shape[1]
    inverse = []
    for plane in room.planes:
        normal = column(plane.normal)
        height = float(plane.point @ plane.normal) - dot(origins, normal)
        if origins.shape[1] == 1:
            # One origin: a single height, folded into the normal.
            inverse.append(dot(directions, normal / height[0]) if height[0] < 0 else np.zeros(count))
        else:
            inverse.append(np.divide(dot(directions, normal), height, out=np.zeros(count), where=height < 0))
    if not inverse:
        return np.full(count, np.inf), np.full(count, -1)
    best = functools.reduce(np.maximum, inverse)
    index = np.full(count, -1)
    for k in reversed(range(len(inverse))):
        index[inverse[k] == best] = k
    met = best > 0
    return np.divide(1.0, best, out=np.full(count, np.inf), where=met), np.where(met, index, -1)
