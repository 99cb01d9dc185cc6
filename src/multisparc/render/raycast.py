"""Ray casting against placed CAD models and the room: nearest hit, normal, instance and albedo.

Each CAD model gets one embree structure (`trimesh.ray.ray_pyembree.RayMeshIntersector`), built on
first use and reused for every scene: instead of moving the mesh, rays are moved into the model's CAD
frame, `o' = R^T (o - t) / s`, `d' = R^T d / s`. `d'` is deliberately not renormalised, so a ray
parameter lambda means the same point in both frames: `o + lambda d = t + R (s (o' + lambda d'))`.

Embree only says which triangle a ray hits first; the hit itself is recomputed in float64 as the
intersection of the ray with that triangle's plane (exact to float64 rounding, elementwise so that
every ray gets the same bits in any batch). Rays that cannot reach an object (outside its bounding
sphere, outside its oriented bounding box, or entering it beyond the nearest hit so far) are never
handed to embree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import trimesh
from trimesh.ray.ray_pyembree import RayMeshIntersector

from multisparc.cad.index import CadIndex
from multisparc.render.objects import PlacedObject
from multisparc.render.room import Room, intersect_planes
from multisparc.render.texture import texture_factor
from multisparc.render.vectors import column, dot, normalise, select, transform

ROOM_INSTANCE = 0
BACKGROUND_INSTANCE = -1
# Bounding boxes grow by this fraction of their size (plus an absolute metre floor) so that rays
# grazing a face are still handed to embree rather than culled by rounding.
_BOX_MARGIN = 1e-6
_BOX_MARGIN_FLOOR = 1e-9
# A hit whose ray is this close to parallel to the triangle (|cos| of unit vectors) is numerically
# meaningless; it covers less than a pixel's worth of surface seen edge-on.
_MIN_GRAZING_COSINE = 1e-7

MeshSource = Mapping[str, trimesh.Trimesh] | CadIndex


@dataclass
class Hits:
    """Nearest surface along N rays; every array is zero where nothing was hit (instance -1).

    distance: (N,) float32 metres along the unit ray. point: (N, 3) float32 camera frame, metres.
    normal: (N, 3) float32 unit, camera frame, facing the ray origin (normal . direction <= 0).
    instance: (N,) int32, the object's instance id, 0 for the room, -1 for nothing.
    albedo: (N, 3) float32 in [0, 1], the surface's textured reflectance at the hit.
    """

    distance: np.ndarray
    point: np.ndarray
    normal: np.ndarray
    instance: np.ndarray
    albedo: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        """(N,) bool: whether the ray met any surface."""
        return self.instance != BACKGROUND_INSTANCE


@dataclass(frozen=True, eq=False)
class CadGeometry:
    """What ray casting needs of one CAD mesh, all in its CAD frame.

    intersector: the embree structure (built by trimesh on the first query, then kept).
    corner: (3, F) first vertex of every triangle. face_normal: (3, F) unit triangle normals (zero for
    degenerate triangles). lower, upper: (3,) its bounding box, slightly enlarged.
    """

    intersector: RayMeshIntersector
    corner: np.ndarray
    face_normal: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def from_mesh(cls, mesh: trimesh.Trimesh) -> CadGeometry:
        lower, upper = np.asarray(mesh.bounds, dtype=np.float64)
        margin = _BOX_MARGIN * (upper - lower).max() + _BOX_MARGIN_FLOOR
        return cls(
            intersector=RayMeshIntersector(mesh),
            corner=np.ascontiguousarray(mesh.triangles[:, 0].T, dtype=np.float64),
            face_normal=np.ascontiguousarray(mesh.face_normals.T, dtype=np.float64),
            lower=lower - margin,
            upper=upper + margin,
        )


@dataclass(frozen=True, eq=False)
class _Placement:
    """An object with its geometry and its bounding sphere in the camera frame.

    Ray batches are component-major (3, N), camera frame, unit directions."""

    obj: PlacedObject
    geometry: CadGeometry
    centre: np.ndarray
    radius: float

    @classmethod
    def of(cls, obj: PlacedObject, geometry: CadGeometry) -> _Placement:
        half = 0.5 * obj.s * (geometry.upper - geometry.lower)
        centre = obj.t + obj.R @ (0.5 * obj.s * (geometry.upper + geometry.lower))
        return cls(obj, geometry, centre, float(np.linalg.norm(half)))

    def sphere_candidates(self, origins: np.ndarray, directions: np.ndarray, limit: np.ndarray) -> np.ndarray:
        """Indices of the rays that pass through the bounding sphere before distance `limit` (N,)."""
        to_centre = column(self.centre) - origins
        along = dot(to_centre, directions)
        miss_squared = dot(to_centre, to_centre) - along * along
        reach = (miss_squared <= self.radius**2) & (along + self.radius > 0) & (along - self.radius < limit)
        return np.flatnonzero(reach)

    def to_cad(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rays camera frame -> CAD frame, directions not renormalised (same ray parameter)."""
        R_inv, s = self.obj.R.T, column(self.obj.s)
        return transform(R_inv, origins - column(self.obj.t)) / s, transform(R_inv, directions) / s

    def box_interval(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slab test of CAD-frame rays against the bounding box: entry and exit ray parameters (M,).

        A ray meets the box ahead of its origin where exit >= max(entry, 0); a ray parallel to a slab
        that it lies outside of gets an empty interval."""
        entry, exit_ = np.full(directions.shape[1], -np.inf), np.full(directions.shape[1], np.inf)
        for axis in range(3):
            with np.errstate(divide="ignore", invalid="ignore"):
                inverse = 1.0 / directions[axis]
                low = (self.geometry.lower[axis] - origins[axis]) * inverse
                high = (self.geometry.upper[axis] - origins[axis]) * inverse
            entry = np.maximum(entry, np.fmin(low, high))
            exit_ = np.minimum(exit_, np.fmax(low, high))
        return entry, exit_


class RayCaster:
    """Casts rays against placed CAD models and a room.

    Built from a mesh source: a `CadIndex` or any mapping from CAD id to `trimesh.Trimesh` (CAD frame,
    metres). The per-CAD geometry (embree structure, triangle planes, bounding box) is built on the
    first ray cast against that CAD and kept in an LRU cache of `cache_size` models, so that thousands
    of scenes re-use it. Pickles without its cache (each data-loader worker builds its own).
    """

    def __init__(self, meshes: MeshSource, cache_size: int = 1024) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, got {cache_size}")
        self.meshes = meshes
        self.cache_size = cache_size
        self._reset_cache()

    def _reset_cache(self) -> None:
        self._cached_geometry = lru_cache(maxsize=self.cache_size)(self._build_geometry)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_cached_geometry"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_cache()

    def geometry(self, cad_key: str) -> CadGeometry:
        """The cached ray-casting geometry of one CAD model (built on first request)."""
        return self._cached_geometry(cad_key)

    def _build_geometry(self, cad_key: str) -> CadGeometry:
        if isinstance(self.meshes, CadIndex):
            mesh = self.meshes.mesh(cad_key)  # raises UnknownCadId naming the index file
        else:
            try:
                mesh = self.meshes[cad_key]
            except KeyError:
                raise KeyError(f"the renderer's mesh source has no CAD {cad_key!r}") from None
            if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
                raise ValueError(f"CAD {cad_key!r}: expected a trimesh.Trimesh with faces, got {mesh!r}")
        return CadGeometry.from_mesh(mesh)

    def _placements(self, objects: Sequence[PlacedObject], origins: np.ndarray) -> list[_Placement]:
        """Objects with their geometry, nearest bounding sphere first (so that later ones are culled more)."""
        seen: set[int] = set()
        for obj in objects:
            if obj.instance_id in seen:
                raise ValueError(f"instance id {obj.instance_id} is used by two objects; ids must be unique")
            seen.add(obj.instance_id)
        placements = [_Placement.of(obj, self.geometry(obj.cad_key)) for obj in objects]
        viewpoint = origins.mean(axis=1) if origins.shape[1] else np.zeros(3)
        return sorted(placements, key=lambda p: float(np.linalg.norm(p.centre - viewpoint)) - p.radius)

    def cast(
        self,
        objects: Sequence[PlacedObject],
        room: Room | None,
        origins: np.ndarray,
        directions: np.ndarray,
    ) -> Hits:
        """Nearest hit along each ray over the objects and the room.

        origins: (N, 3), or (3,) for one origin shared by all rays (a camera centre); directions: (N, 3),
            normalised here. Camera frame, metres.
        Ties between surfaces at exactly the same distance go to the room, then to the object whose
        bounding sphere is nearest.
        """
        origins, directions = _check_rays(origins, directions)
        count = directions.shape[1]
        nearest = np.full(count, np.inf)
        instance = np.full(count, BACKGROUND_INSTANCE, dtype=np.int32)
        if room is None:
            normal, albedo = np.zeros((3, count)), np.zeros((3, count))
        else:
            nearest, plane_index = intersect_planes(room, origins, directions)
            instance[plane_index >= 0] = ROOM_INSTANCE
            # A trailing zero column: plane index -1 (no hit) gathers zeros.
            normal = np.stack([*(plane.normal for plane in room.planes), np.zeros(3)], axis=1)[:, plane_index]
            albedo = np.stack([*(plane.albedo for plane in room.planes), np.zeros(3)], axis=1)[:, plane_index]
            for index, plane in enumerate(room.planes):
                if plane.texture.pattern != "plain":
                    rows = np.flatnonzero(plane_index == index)
                    points = select(origins, rows) + nearest[rows] * directions[:, rows]
                    albedo[:, rows] *= texture_factor(plane.texture, plane.local_coordinates(points))
        for placement in self._placements(objects, origins):
            rows, distance, face, cad_points = _first_hits(placement, origins, directions, nearest)
            obj = placement.obj
            nearest[rows] = distance
            instance[rows] = obj.instance_id
            # Normals transform with the inverse transpose of R diag(s): R diag(1/s).
            normal[:, rows] = normalise(transform(obj.R, placement.geometry.face_normal[:, face] / column(obj.s)))
            albedo[:, rows] = column(obj.albedo) * texture_factor(obj.texture, cad_points * column(obj.s))
        hit = instance != BACKGROUND_INSTANCE
        distance = np.where(hit, nearest, 0.0)
        point = origins + distance * directions
        # The project's convention: normals face the viewer, whatever the triangle winding.
        normal = np.where(dot(normal, directions) > 0, -normal, normal)
        return Hits(
            distance=distance.astype(np.float32),
            point=np.where(hit, point, 0.0).T.astype(np.float32, order="C"),
            normal=normal.T.astype(np.float32, order="C"),
            instance=instance,
            albedo=np.clip(albedo, 0.0, 1.0).T.astype(np.float32, order="C"),
        )

    def occluded(self, objects: Sequence[PlacedObject], origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """(N,) bool: whether each ray meets any object ahead; rays as in `cast`.

        The room is not tested: one-sided planes seen from inside would block every ray leaving the room.
        """
        origins, directions = _check_rays(origins, directions)
        blocked = np.zeros(directions.shape[1], dtype=bool)
        unlimited = np.full(directions.shape[1], np.inf)
        for placement in self._placements(objects, origins):
            rows = placement.sphere_candidates(origins, directions, unlimited)
            rows = rows[~blocked[rows]]
            cad_origins, cad_directions = placement.to_cad(select(origins, rows), directions[:, rows])
            entry, exit_ = placement.box_interval(cad_origins, cad_directions)
            inside = np.flatnonzero(exit_ >= np.maximum(entry, 0.0))
            if len(inside):
                cad_directions = cad_directions[:, inside]
                cad_origins = np.broadcast_to(select(cad_origins, inside), cad_directions.shape)
                hit = placement.geometry.intersector.intersects_any(cad_origins.T, cad_directions.T)
                blocked[rows[inside[hit]]] = True
        return blocked


def _check_rays(origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rays as given to `cast` -> component-major float64 origins (3, N) or (3, 1) and unit directions
    (3, N); ValueError on bad input."""
    origins = np.asarray(origins, dtype=np.float64)
    directions = np.asarray(directions, dtype=np.float64)
    if directions.ndim != 2 or directions.shape[1] != 3 or origins.shape not in ((3,), directions.shape):
        raise ValueError(
            f"directions must be (N, 3) and origins (N, 3) or (3,), got {directions.shape} and {origins.shape}"
        )
    origins, directions = np.ascontiguousarray(origins.reshape(-1, 3).T), np.ascontiguousarray(directions.T)
    if not (np.isfinite(origins).all() and np.isfinite(directions).all()):
        raise ValueError("ray origins and directions must be finite")
    length = np.sqrt(dot(directions, directions))
    if not length.all():
        raise ValueError(f"{int(np.sum(length == 0))} ray direction(s) are zero vectors")
    return origins, directions / length


def _first_hits(
    placement: _Placement, origins: np.ndarray, directions: np.ndarray, nearest: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rays (3, N) that hit the object nearer than `nearest` (N,) so far.

    Returns their indices (M,), distances (M,) along the unit camera-frame ray, triangle indices (M,)
    and hit points (3, M) in the CAD frame.
    """
    rows = placement.sphere_candidates(origins, directions, nearest)
    cad_origins, cad_directions = placement.to_cad(select(origins, rows), directions[:, rows])
    entry, exit_ = placement.box_interval(cad_origins, cad_directions)
    inside = np.flatnonzero((exit_ >= np.maximum(entry, 0.0)) & (entry < nearest[rows]))
    rows, cad_origins, cad_directions = rows[inside], select(cad_origins, inside), cad_directions[:, inside]
    geometry = placement.geometry
    if len(rows):
        face = geometry.intersector.intersects_first(
            np.broadcast_to(cad_origins, cad_directions.shape).T, cad_directions.T
        )
    else:
        face = rows
    plane_normal = geometry.face_normal[:, face]
    facing = dot(cad_directions, plane_normal)
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = dot(geometry.corner[:, face] - cad_origins, plane_normal) / facing
    steep = np.abs(facing) > _MIN_GRAZING_COSINE * np.sqrt(dot(cad_directions, cad_directions))
    keep = np.flatnonzero((face >= 0) & steep & (distance > 0) & (distance < nearest[rows]))
    distance = distance[keep]
    cad_points = select(cad_origins, keep) + distance * cad_directions[:, keep]
    return rows[keep], distance, face[keep], cad_points
