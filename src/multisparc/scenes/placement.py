"""Furniture on the floor: which CAD models, how large, where, facing which way.

World frame: Y up, floor at y = 0, metres. Every object stands upright (CAD +Y = world up) with a
random yaw, the bottom of its bounding box on the floor (CAD models need not be centred), inside the
camera's view, and its floor footprint (an oriented rectangle in world x, z) clear of the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from multisparc.cad import CadIndex
from multisparc.categories import scale_range
from multisparc.scenes.camera_rig import CameraRig
from multisparc.scenes.config import SceneConfig

# Candidate image points drawn at once when looking for a spot on the floor (vectorised rejection);
# views that show little floor give up after these.
_FLOOR_CANDIDATES = 512
# New models tried for an object that fits nowhere before the whole placement gives up.
_REDRAWS = 3


@dataclass(frozen=True)
class Footprint:
    """An oriented rectangle on the floor, world (x, z), metres.

    centre: (2,). axes: (2, 2), rows are its two unit axes. half_size: (2,) half lengths along them.
    """

    centre: np.ndarray
    axes: np.ndarray
    half_size: np.ndarray

    def corners(self) -> np.ndarray:
        """(4, 2) corner points (x, z)."""
        signs = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64)
        return self.centre + (signs * self.half_size) @ self.axes


def footprints_overlap(a: Footprint, b: Footprint, margin: float = 0.0) -> bool:
    """Whether two footprints come closer than `margin` metres along every separating axis.

    The separating axis theorem for two rectangles: they are apart iff their projections onto one of
    the 4 edge normals are apart. Hand-written: a 2D library dependency for these few lines is not
    worth it.
    """
    offset = b.centre - a.centre
    for axis in (*a.axes, *b.axes):
        reach_a = np.sum(a.half_size * np.abs(a.axes @ axis))
        reach_b = np.sum(b.half_size * np.abs(b.axes @ axis))
        if abs(offset @ axis) >= reach_a + reach_b + margin:
            return False
    return True


@dataclass(frozen=True)
class StandingObject:
    """A CAD model standing in the world: `X_world = t + R @ (s * X_cad)`.

    R: (3, 3) rotation about world Y. t: (3,) metres. s: (3,) scales along the CAD axes.
    footprint: its floor rectangle.
    """

    cad_id: str
    category: str
    sym: str
    R: np.ndarray
    t: np.ndarray
    s: np.ndarray
    footprint: Footprint


def choose_cad(index: CadIndex, categories: Sequence[str], rng: np.random.Generator) -> str:
    """A CAD id: a class uniformly from `categories`, then a model uniformly within that class."""
    category = categories[rng.integers(len(categories))]
    ids = index.ids_of(category)
    return ids[rng.integers(len(ids))]


def sample_scale(category: str, extent: np.ndarray, max_anisotropy: float, rng: np.random.Generator) -> np.ndarray:
    """Per-axis scales (3,) giving a CAD of `extent` (3,) metres a physical size in its class's range.

    One common position in the (log) range plus per-axis jitter; the spread of log scales is then
    limited so that no axis is stretched more than `max_anisotropy` times another, and the result is
    clipped to the range (which wins when a model's proportions are far from its class's).
    """
    low, high = scale_range(category, extent)
    common = rng.uniform()
    jitter = np.log(max_anisotropy) / 2
    log_scale = np.log(low) + (np.log(high) - np.log(low)) * common + rng.uniform(-jitter, jitter, 3)
    mean = log_scale.mean()
    log_scale = mean + np.clip(log_scale - mean, -np.log(max_anisotropy) / 2, np.log(max_anisotropy) / 2)
    return np.clip(np.exp(log_scale), low, high)


def _yaw_rotation(yaw: float) -> np.ndarray:
    """(3, 3) rotation by `yaw` radians about +Y (scipy's `Rotation.from_euler("y", yaw)`, written out:
    it is built for every candidate placement, where scipy's per-call overhead would dominate)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def stand_on_floor(
    bounds: np.ndarray, s: np.ndarray, yaw: float, centre_xz: np.ndarray
) -> tuple[np.ndarray, np.ndarray, Footprint]:
    """Pose of a model with CAD bounding box `bounds` (2, 3) and scales s (3,) turned by `yaw` radians
    about world Y, its box bottom at y = 0 and its box centre above `centre_xz` (2,) (world x, z).

    Returns R (3, 3), t (3,) and the footprint.
    """
    R = _yaw_rotation(yaw)
    box_centre = R @ (s * bounds.mean(axis=0))
    t = np.array([centre_xz[0] - box_centre[0], -s[1] * bounds[0, 1], centre_xz[1] - box_centre[2]])
    half_size = s[[0, 2]] * (bounds[1, [0, 2]] - bounds[0, [0, 2]]) / 2
    axes = R[np.ix_([0, 2], [0, 2])].T  # CAD x and z axes in world (x, z)
    return R, t, Footprint(np.asarray(centre_xz, dtype=np.float64), axes, half_size)


def _first_free(
    spots: np.ndarray, axes: np.ndarray, half_size: np.ndarray, others: Sequence[Footprint], margins: np.ndarray
) -> int | None:
    """Index of the first footprint centre among `spots` (M, 2) at which a rectangle of `axes` (2, 2)
    and `half_size` (2,) keeps `margins` (J,) from the `others` (J) (`footprints_overlap` of each spot
    against each other footprint, all at once), or None."""
    if not len(spots):
        return None
    free = free_spots(spots, axes, half_size, others, margins).nonzero()[0]
    return int(free[0]) if len(free) else None


def free_spots(
    spots: np.ndarray, axes: np.ndarray, half_size: np.ndarray, others: Sequence[Footprint], margins: np.ndarray
) -> np.ndarray:
    """(M,) bools: whether a rectangle of `axes` (2, 2) and `half_size` (2,) centred at each of `spots`
    (M, 2) (world x, z, metres) keeps `margins` (J,) from each of the `others` (J, at least one)."""
    other_axes = np.stack([other.axes for other in others])  # (J, 2, 2)
    other_half = np.stack([other.half_size for other in others])  # (J, 2)
    other_centre = np.stack([other.centre for other in others])  # (J, 2)
    # The 4 separating axes of each pair (J, 4, 2): the new rectangle's and the other's edge normals.
    separating = np.concatenate([np.broadcast_to(axes, other_axes.shape), other_axes], axis=1)
    reach = np.abs(separating @ axes.T) @ half_size + np.einsum(
        "jkd,jd->jk", np.abs(separating @ other_axes.transpose(0, 2, 1)), other_half
    )
    gap = np.abs(np.einsum("mjd,jkd->mjk", other_centre[None] - spots[:, None], separating))
    apart = (gap >= reach[None] + margins[None, :, None]).any(axis=2)  # (M, J)
    return apart.all(axis=1)


def _spots_in_view(rig: CameraRig, config: SceneConfig, centre_height: float, rng: np.random.Generator) -> np.ndarray:
    """Up to `placement_tries` floor points (M, 2) (world x, z) at a horizontal distance within
    `object_distance` from the camera, where an object whose bounding-box centre is `centre_height`
    metres above the floor shows that centre inside the image. Candidates lie under random points of
    the image widened by `view_margin` of its width on each side and extended down by its height."""
    width, height = config.width, config.height
    corner_low = np.array([-config.view_margin * width, 0.0])
    corner_high = np.array([(1.0 + config.view_margin) * width, 2.0 * height])
    low, high = config.object_distance
    uv = rng.uniform(corner_low, corner_high, (_FLOOR_CANDIDATES, 2))
    # Component-major (3, M): the candidates' camera-frame rays and their world directions.
    rays = rig.K_inverse[:, 0:1] * uv[:, 0] + rig.K_inverse[:, 1:2] * uv[:, 1] + rig.K_inverse[:, 2:3]
    world = rig.world_to_camera.T @ rays
    with np.errstate(invalid="ignore", divide="ignore"):
        # Ray parameter of the floor point (NaN for rays that do not go down: it compares False).
        reach = np.where(world[1] < -1e-9, rig.position[1] / -world[1], np.nan)
        # The box centre above it, camera frame, and the pixel it shows at.
        centre = reach * rays + centre_height * rig.up[:, None]
        pixel = (rig.K @ centre)[:2] / centre[2]
    distance = reach * np.hypot(world[0], world[2])
    shown = (centre[2] > 0) & (pixel[0] >= 0) & (pixel[0] <= width - 1) & (pixel[1] >= 0) & (pixel[1] <= height - 1)
    chosen = (shown & (distance >= low) & (distance <= high)).nonzero()[0][: config.placement_tries]
    return rig.position[[0, 2]] + (reach[chosen] * world[[0, 2]][:, chosen]).T


def place_objects(
    index: CadIndex,
    categories: Sequence[str],
    count: int,
    rig: CameraRig,
    config: SceneConfig,
    rng: np.random.Generator,
    placed: Sequence[StandingObject] = (),
    walls: Sequence[Footprint] = (),
) -> list[StandingObject] | None:
    """`count` objects standing in the camera's view without touching each other, the camera, the
    objects already `placed` (returned first) or the floor behind `walls` (kept `wall_margin` from);
    None when the view's floor has no room for them."""
    clearance = config.camera_clearance
    camera_zone = Footprint(rig.position[[0, 2]], np.eye(2), np.full(2, clearance / 2))
    objects = list(placed)
    for _ in range(count):
        standing = None
        for _ in range(_REDRAWS):
            standing = _place_one(index, categories, rig, config, rng, camera_zone, objects, walls)
            if standing is not None:
                break
        if standing is None:
            return None
        objects.append(standing)
    return objects


def _place_one(
    index: CadIndex,
    categories: Sequence[str],
    rig: CameraRig,
    config: SceneConfig,
    rng: np.random.Generator,
    camera_zone: Footprint,
    placed: list[StandingObject],
    walls: Sequence[Footprint],
) -> StandingObject | None:
    """A new model, scale and yaw, standing on the first free spot in view (its bounding-box centre
    inside the image), `camera_clearance / 2` from `camera_zone`, `footprint_margin` from the
    `placed` objects and `wall_margin` from the `walls`; None if no spot is free."""
    cad_id = choose_cad(index, categories, rng)
    entry = index[cad_id]
    extent, centre = index.extent(cad_id), index.centre(cad_id)
    bounds = np.stack([centre - extent / 2, centre + extent / 2])
    s = sample_scale(entry.category, extent, config.max_anisotropy, rng)
    yaw = rng.uniform(-np.pi, np.pi)
    spots = _spots_in_view(rig, config, s[1] * extent[1] / 2, rng)
    # The footprint's shape (as `stand_on_floor` makes it): CAD x and z axes turned by yaw, half sizes.
    axes = _yaw_rotation(yaw)[np.ix_([0, 2], [0, 2])].T
    half_size = s[[0, 2]] * extent[[0, 2]] / 2
    margins = np.array(
        [config.camera_clearance / 2] + [config.footprint_margin] * len(placed) + [config.wall_margin] * len(walls)
    )
    others = [camera_zone, *(other.footprint for other in placed), *walls]
    free = _first_free(spots, axes, half_size, others, margins)
    if free is None:
        return None
    R, t, footprint = stand_on_floor(bounds, s, yaw, spots[free])
    return StandingObject(cad_id, entry.category, entry.sym, R, t, s, footprint)
