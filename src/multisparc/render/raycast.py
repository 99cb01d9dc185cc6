"""Ray casting against placed CAD models and the room: nearest hit, normal, instance and albedo.

Each CAD model gets one embree structure (`embreex`), built on first use and reused for every scene:
instead of moving the mesh, rays are moved into the model's CAD frame, `o' = R^T (o - t) / s`,
`d' = R^T d / s`. `d'` is deliberately not renormalised, so a ray parameter lambda means the same
point in both frames: `o + lambda d = t + R (s (o' + lambda d'))`.

A cast asks embree object by object, nearest bounding sphere first, each within the (float32) hits
found so far, which then only says which triangle a ray meets first; the hit itself is recomputed in
float64 as the intersection of the ray with that triangle's plane, for every object's hits at once
(exact to float64 rounding, elementwise so that every ray gets the same bits in any batch), and each
ray keeps its nearest. (A triangle that embree reports but that the ray meets exactly edge-on, within
`_MIN_GRAZING_COSINE`, counts as no hit but still hides what lies behind it.) Rays that cannot reach an
object are never handed to embree: rays from one shared origin (a camera) that miss the projection of
its bounding box, other rays that miss its bounding sphere, parallel rays (shadows) that miss the box's
shadow. Every such test is a fixed function of the ray, so what a ray returns never depends on the other
rays of its batch.

Per-call costs matter as much as per-ray ones here (a training example casts a few thousand rays):
what depends only on an object or a scene is worked out once and cached, gathers use `take` (several
times faster than fancy indexing on these arrays), and float32 is used wherever only culling or embree
reads the values.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import trimesh
from embreex.mesh_construction import TriangleMesh
from embreex.rtcore_scene import EmbreeScene

from multisparc.cad.index import CadIndex
from multisparc.render.objects import PlacedObject
from multisparc.render.room import Room, intersect_planes
from multisparc.render.texture import texture_factor
from multisparc.render.vectors import column, cross, dot, normalise, scatter, select, transform

ROOM_INSTANCE = 0
BACKGROUND_INSTANCE = -1
# Bounding boxes grow by this fraction of their size (plus an absolute metre floor) so that rays
# grazing a face are still handed to embree rather than culled by rounding.
_BOX_MARGIN = 1e-6
_BOX_MARGIN_FLOOR = 1e-9
# A hit whose ray is this close to parallel to the triangle (|cos| of unit vectors, up to the object's
# anisotropy) is numerically meaningless; it covers less than a pixel's worth of surface seen edge-on.
_MIN_GRAZING_COSINE = 1e-7
# Relative widening of the float32 culling tests: far above float32 rounding, so that no ray that
# reaches a bounding box is culled.
_CULL_SLACK = 1e-4
# A cast that asks for the planes of at least 1 / _PLANES_AT_ONCE of a model's triangles gets all of
# them worked out at once (and kept for the scene's later casts): cheaper than per hit from there on.
_PLANES_AT_ONCE = 4
# Embree's float32 far limit is the nearest hit so far widened by this fraction (far above float32
# rounding); the exact float64 distance decides afterwards.
_FAR_SLACK = 1e-4

MeshSource = Mapping[str, trimesh.Trimesh] | CadIndex


@dataclass
class Hits:
    """Nearest surface along N rays; every array is zero where nothing was hit (instance -1).

    distance: (N,) float32 metres along the unit ray. point: (N, 3) float32 camera frame, metres.
    (The (N, 3) arrays may be transposed views of component-major storage.)
    normal: (N, 3) float32 unit, camera frame, facing the ray origin (normal . direction <= 0).
    instance: (N,) int32, the object's instance id, 0 for the room, -1 for nothing.
    albedo: (N, 3) float32 in [0, 1], the surface's textured reflectance at the hit (zero for the rays
    whose albedo was not asked for, see `RayCaster.cast`).
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

    def take(self, rows: np.ndarray) -> Hits:
        """The hits of the rays `rows` (M,) int (the (M, 3) arrays as views of component-major ones)."""
        return Hits(
            distance=self.distance.take(rows),
            point=self.point.T.take(rows, axis=1).T,
            normal=self.normal.T.take(rows, axis=1).T,
            instance=self.instance.take(rows),
            albedo=self.albedo.T.take(rows, axis=1).T,
        )


@dataclass(frozen=True, eq=False)
class CadGeometry:
    """What ray casting needs of one CAD mesh, all in its CAD frame.

    scene: the embree structure, built over the vertices relative to `centre` in float32 (so that the
    float32 grid is as fine as the model allows, wherever the model lies in its own frame).
    face_normal: (3, F) float64 unit triangle normals (zero for degenerate triangles). plane_offset:
    (F,) float64 `n . v` of each triangle's normal and first vertex. lower, upper: (3,) its bounding
    box, slightly enlarged; centre: (3,) the box centre.
    """

    scene: EmbreeScene
    face_normal: np.ndarray
    plane_offset: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    centre: np.ndarray

    @classmethod
    def from_mesh(cls, mesh: trimesh.Trimesh) -> CadGeometry:
        lower, upper = np.asarray(mesh.bounds, dtype=np.float64)
        margin = _BOX_MARGIN * (upper - lower).max() + _BOX_MARGIN_FLOOR
        centre = 0.5 * (lower + upper)
        scene = EmbreeScene()
        vertices = np.asarray(mesh.vertices, dtype=np.float64) - centre
        TriangleMesh(scene, vertices.astype(np.float32), np.asarray(mesh.faces, dtype=np.int32))
        # Embree builds its hierarchy on the first query: build it now, with the geometry.
        scene.run(np.zeros((1, 3), dtype=np.float32), np.ones((1, 3), dtype=np.float32))
        face_normal = np.ascontiguousarray(mesh.face_normals.T, dtype=np.float64)
        return cls(
            scene=scene,
            face_normal=face_normal,
            plane_offset=dot(np.ascontiguousarray(mesh.triangles[:, 0].T, dtype=np.float64), face_normal),
            lower=lower - margin,
            upper=upper + margin,
            centre=centre,
        )

    @cached_property
    def box_corners(self) -> np.ndarray:
        """(3, 8) corners of the enlarged bounding box, CAD frame."""
        return np.stack(np.meshgrid(*zip(self.lower, self.upper, strict=True), indexing="ij")).reshape(3, 8)


@dataclass(frozen=True, eq=False)
class _Placement:
    """An object with its geometry and what ray casting needs of it, all worked out once per object.

    to_cad: (3, 3) diag(1/s) R^T, camera-frame vectors into the CAD frame; to_cad32 the same in float32.
    to_camera_normal: (3, 3) R diag(1/s), the inverse transpose of the pose: it takes a triangle's CAD
    normal n to its camera-frame normal m (not unit); `hit_planes` applies it to the triangles that rays
    hit only (a model may have a hundred thousand triangles, a cast meets a few thousand).
    corners: (3, 8) its bounding box in the camera frame. centre (3,), radius: its bounding sphere.
    min_facing: smallest |m . d| of a hit that is not grazing, for unit d.
    Ray batches are component-major (3, N), camera frame, unit directions.
    """

    obj: PlacedObject
    geometry: CadGeometry
    to_cad: np.ndarray
    to_cad32: np.ndarray
    to_camera_normal: np.ndarray
    corners: np.ndarray
    centre: np.ndarray
    radius: float
    min_facing: float
    # Projected bounding rectangles and embree origins by view origin, shadow bounds by light direction
    # (the casts of a scene share the camera centre and the light).
    _rectangles: dict[bytes, tuple[float, float, float, float] | None] = field(default_factory=dict)
    _embree_origins: dict[bytes, np.ndarray] = field(default_factory=dict)
    _shadow_bounds: dict[bytes, tuple[float, float, float, float, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, obj: PlacedObject, geometry: CadGeometry) -> _Placement:
        to_cad = obj.R.T / column(obj.s)
        return cls(
            obj=obj,
            geometry=geometry,
            to_cad=to_cad,
            to_cad32=to_cad.astype(np.float32),
            to_camera_normal=obj.R / obj.s,
            corners=column(obj.t) + obj.R @ (column(obj.s) * geometry.box_corners),
            centre=obj.t + obj.R @ (obj.s * geometry.centre),
            radius=float(np.linalg.norm(0.5 * obj.s * (geometry.upper - geometry.lower))),
            min_facing=_MIN_GRAZING_COSINE / float(obj.s.min()),
        )

    def hit_planes(self, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera-frame planes of `triangles` (M,) int: normals m (3, M), not unit, and offsets (M,),
        `m . x` of any point x of the triangle's plane. A ray `o + l d` meets that plane at
        `l = (offset - m . o) / (m . d)`, as in the CAD frame (the same l).

        Worked out for the asked triangles alone while they are few against the model's (a detailed
        model has a hundred thousand), else taken from `planes`, all of them at once; elementwise per
        triangle either way, so a triangle's plane has the same bits in every cast."""
        geometry = self.geometry
        if "planes" not in self.__dict__ and _PLANES_AT_ONCE * len(triangles) < geometry.plane_offset.shape[0]:
            cad_normal = geometry.face_normal.take(triangles, axis=1)
            return self._camera_planes(cad_normal, geometry.plane_offset.take(triangles))
        normal, offset = self.planes
        return normal.take(triangles, axis=1), offset.take(triangles)

    @cached_property
    def planes(self) -> tuple[np.ndarray, np.ndarray]:
        """`hit_planes` of every triangle: (3, F) normals and (F,) offsets."""
        return self._camera_planes(self.geometry.face_normal, self.geometry.plane_offset)

    def _camera_planes(self, normal: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CAD-frame triangle normals (3, M) and offsets (M,) -> the camera frame's (`hit_planes`)."""
        camera_normal = transform(self.to_camera_normal, normal)
        return camera_normal, offset + dot(camera_normal, column(self.obj.t))

    def sphere_candidates(self, origins: np.ndarray, directions: np.ndarray, limit: np.ndarray) -> np.ndarray:
        """Indices of the rays that pass through the bounding sphere before distance `limit` (N,)."""
        to_centre = column(self.centre) - origins
        along = dot(to_centre, directions)
        miss_squared = dot(to_centre, to_centre) - along * along
        reach = (miss_squared <= self.radius**2) & (along + self.radius > 0) & (along - self.radius < limit)
        return reach.nonzero()[0]

    def rectangle(self, origin: np.ndarray) -> tuple[float, float, float, float] | None:
        """(x0, y0, x1, y1) holding the bounding box's projection onto z = 1 seen from origin (3,),
        widened against rounding; None when the box reaches behind the origin along z."""
        key = origin.tobytes()
        if key not in self._rectangles:
            relative = self.corners - column(origin)
            depth = relative[2]
            rectangle = None
            if depth.min() > 0:
                x, y = relative[0] / depth, relative[1] / depth
                pad = _CULL_SLACK * (1.0 + max(np.abs(x).max(), np.abs(y).max()))
                rectangle = (float(x.min() - pad), float(y.min() - pad), float(x.max() + pad), float(y.max() + pad))
            self._rectangles[key] = rectangle
        return self._rectangles[key]

    def cone_candidates(self, view: _View) -> np.ndarray:
        """Indices of the rays from the view's origin within the cone around the bounding sphere."""
        to_centre = self.centre - view.origin
        distance = float(np.linalg.norm(to_centre))
        if distance <= self.radius * (1.0 + _CULL_SLACK):
            return np.arange(view.directions.shape[1])
        cosine = float(np.sqrt(distance**2 - self.radius**2) / distance)
        axis = (to_centre / distance).astype(np.float32)
        return (dot(view.directions32, column(axis)) >= cosine - _CULL_SLACK).nonzero()[0]

    def shadow_bounds(self, rays: _ParallelRays) -> tuple[float, float, float, float, float]:
        """(a0, b0, a1, b1, along) of the rectangle holding the bounding box's projection along parallel
        rays and its far end along them, widened against rounding (worked out once per direction)."""
        key = rays.axes.tobytes()
        if key not in self._shadow_bounds:
            a, b, along = rays.axes @ self.corners
            pad = _CULL_SLACK * (1.0 + np.abs(self.corners).max())
            self._shadow_bounds[key] = (a.min() - pad, b.min() - pad, a.max() + pad, b.max() + pad, along.max() + pad)
        return self._shadow_bounds[key]

    def to_cad_points(self, points: np.ndarray) -> np.ndarray:
        """Camera-frame points (3, K) -> CAD frame (3, K) float64."""
        return transform(self.to_cad, points - column(self.obj.t))

    def embree_rays(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rays (3, 1 or M) and (3, M) or (3, 1), camera frame -> CAD frame (3, ...) float64."""
        return self.to_cad_points(origins), transform(self.to_cad, directions)

    def _to_embree(self, cad_origins: np.ndarray) -> np.ndarray:
        """CAD-frame origins (3, K) as embree takes them: (K, 3) float32 relative to the box centre."""
        return (cad_origins - column(self.geometry.centre)).T.astype(np.float32)

    def first_faces(self, origins: np.ndarray, directions: np.ndarray, far: np.ndarray) -> dict[str, np.ndarray]:
        """Embree's first triangle along rays (3, 1 or M), directions (3, M) float32, within `far` (M,)
        float32: "primID" (M,) int32 (-1 for none) and "tfar" (M,) float32, the hit's ray parameter
        (else `far`)."""
        count = directions.shape[1]
        cad_directions = transform(self.to_cad32, directions).T
        if origins.shape[1] == 1:
            key = origins.tobytes()
            if key not in self._embree_origins:
                self._embree_origins[key] = self._to_embree(self.to_cad_points(origins))
            embree_origins = np.broadcast_to(self._embree_origins[key], (count, 3))
        else:
            embree_origins = self._to_embree(self.to_cad_points(origins))
        return self.geometry.scene.run(embree_origins, cad_directions, far, output=1)

    def any_hit(self, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """(M,) bool: whether rays from origins (3, M) along directions (3, M), or one direction (3, 1),
        meet the mesh ahead."""
        cad_origins, cad_directions = self.embree_rays(origins, directions)
        result = self.geometry.scene.run(
            self._to_embree(cad_origins), cad_directions.T.astype(np.float32), query="OCCLUDED"
        )
        return result >= 0

    def albedo(self, origins: np.ndarray, directions: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """Textured albedo (3, M) in [0, 1] at the hits `distance` (M,) along rays (3, 1 or M), (3, M)."""
        cad_origins, cad_directions = self.embree_rays(origins, directions)
        factor = texture_factor(self.obj.texture, (cad_origins + distance * cad_directions) * column(self.obj.s))
        return np.clip(column(self.obj.albedo) * factor, 0.0, 1.0)


class _View:
    """Rays (3, N) from one origin (3,), with the directions projected onto z = 1 and in float32, each
    computed on first use and shared by every object of the cast."""

    def __init__(self, origin: np.ndarray, directions: np.ndarray) -> None:
        self.origin = origin
        self.directions = directions

    @cached_property
    def projected(self) -> tuple[np.ndarray, np.ndarray]:
        """x / z and y / z (N,) float32 of the directions; NaN where z <= 0 (such rays never meet a box
        that lies ahead)."""
        z = self.directions[2]
        inverse = np.divide(1.0, z, out=np.full(z.shape, np.nan), where=z > 0)
        return (self.directions[0] * inverse).astype(np.float32), (self.directions[1] * inverse).astype(np.float32)

    @cached_property
    def directions32(self) -> np.ndarray:
        """(3, N) float32 directions."""
        return self.directions.astype(np.float32)


@dataclass(frozen=True, eq=False)
class _ParallelRays:
    """Rays with origins (3, N) and one shared unit direction; axes (3, 3): two unit axes across the
    rays and their direction; a, b, along (N,): the origins' coordinates on them."""

    axes: np.ndarray
    a: np.ndarray
    b: np.ndarray
    along: np.ndarray

    @classmethod
    def of(cls, origins: np.ndarray, direction: np.ndarray) -> _ParallelRays:
        helper = np.zeros(3)
        helper[np.argmin(np.abs(direction))] = 1.0
        first = cross(direction, helper)
        first /= np.linalg.norm(first)
        axes = np.stack([first, cross(direction, first), direction])
        # A matrix product is fine here: these coordinates only cull, with a slack far above rounding.
        return cls(axes, *(axes @ origins))


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


@dataclass(frozen=True, eq=False)
class _Trace:
    """The nearest surface along N rays.

    distance: (N,) float64 along the unit ray (inf for none). plane: (N,) room plane index (-1 for none;
    meaningful where owner is -1). owner: (N,) index into `placements` (-1 for no object). normal:
    (3, N) float64 camera-frame normal of the owner's triangle that the ray meets, not unit (zero where
    no object is met).
    """

    distance: np.ndarray
    plane: np.ndarray
    owner: np.ndarray
    normal: np.ndarray
    placements: list[_Placement]

    @property
    def instance(self) -> np.ndarray:
        """(N,) int32 instance ids: objects', 0 for the room, -1 for nothing."""
        ids = np.array([p.obj.instance_id for p in self.placements] + [BACKGROUND_INSTANCE], dtype=np.int32)
        room = np.where(self.plane >= 0, ROOM_INSTANCE, BACKGROUND_INSTANCE).astype(np.int32)
        return np.where(self.owner >= 0, ids.take(self.owner), room)


def _first_of_each_ray(rays: np.ndarray, distance: np.ndarray, count: int) -> np.ndarray:
    """Indices of the hits (rays (E,) into `count` rays, distances (E,)) that are each ray's nearest;
    ties go to the earliest hit."""
    contested = np.bincount(rays, minlength=count).take(rays) > 1
    winners = (~contested).nonzero()[0]
    if contested.any():
        entries = contested.nonzero()[0]
        ranked = entries.take(np.lexsort((entries, distance.take(entries), rays.take(entries))))
        ranked_rays = rays.take(ranked)
        first = np.ones(len(ranked), dtype=bool)
        first[1:] = ranked_rays[1:] != ranked_rays[:-1]
        winners = np.concatenate([winners, ranked[first]])
    return winners


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
        # Objects are immutable: their transforms and bounds are worked out once per object, not per cast.
        self._placement_of: weakref.WeakKeyDictionary[PlacedObject, _Placement] = weakref.WeakKeyDictionary()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_cached_geometry"], state["_placement_of"]
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

    def _placements(self, objects: Sequence[PlacedObject], viewpoint: np.ndarray) -> list[_Placement]:
        """Objects with their geometry, nearest bounding sphere to `viewpoint` (3,) first (so that later
        ones are culled more)."""
        seen: set[int] = set()
        placements = []
        for obj in objects:
            if obj.instance_id in seen:
                raise ValueError(f"instance id {obj.instance_id} is used by two objects; ids must be unique")
            seen.add(obj.instance_id)
            placement = self._placement_of.get(obj)
            if placement is None:
                placement = self._placement_of[obj] = _Placement.of(obj, self.geometry(obj.cad_key))
            placements.append(placement)
        return sorted(placements, key=lambda p: float(np.linalg.norm(p.centre - viewpoint)) - p.radius)

    def cast(
        self,
        objects: Sequence[PlacedObject],
        room: Room | None,
        origins: np.ndarray,
        directions: np.ndarray,
        albedo_rows: np.ndarray | None = None,
    ) -> Hits:
        """Nearest hit along each ray over the objects and the room.

        origins: (N, 3), or (3,) for one origin shared by all rays (a camera centre); directions: (N, 3),
            normalised here. Camera frame, metres.
        albedo_rows: (N,) bool, the rays whose albedo is needed (textures cost time); the others get
            albedo 0. Default: every ray.
        Ties between surfaces at exactly the same distance go to the room, then to the object whose
        bounding sphere is nearest.
        """
        origins, directions = _check_rays(origins, directions)
        return self.cast_unit(objects, room, origins, directions, albedo_rows)

    def cast_unit(
        self,
        objects: Sequence[PlacedObject],
        room: Room | None,
        origins: np.ndarray,
        directions: np.ndarray,
        albedo_rows: np.ndarray | None = None,
    ) -> Hits:
        """`cast` of component-major rays as the renderer builds them: origins (3, 1) or (3, N) and
        unit directions (3, N) float64, camera frame, taken as they are (no checks)."""
        return self._hits(self._trace(objects, room, origins, directions), room, origins, directions, albedo_rows)

    def instances(
        self, objects: Sequence[PlacedObject], room: Room | None, origins: np.ndarray, directions: np.ndarray
    ) -> np.ndarray:
        """(N,) int32 instance id of the nearest surface along each ray, as `cast_unit(...).instance`
        (the same bits) without computing points, normals or colours. Rays as in `cast_unit`."""
        return self._trace(objects, room, origins, directions).instance

    def _candidates(
        self, placements: list[_Placement], origins: np.ndarray, directions: np.ndarray, limit: np.ndarray
    ) -> list[np.ndarray]:
        """For each placement, the indices of the rays that may meet its bounding box before `limit`."""
        if origins.shape[1] != 1:
            return [placement.sphere_candidates(origins, directions, limit) for placement in placements]
        view = _View(origins[:, 0], directions)
        rectangles = [placement.rectangle(view.origin) for placement in placements]
        boxed = [index for index, rectangle in enumerate(rectangles) if rectangle is not None]
        candidates = [np.empty(0, dtype=np.intp)] * len(placements)
        if boxed:
            # Every rectangle at once (K, N); float32 bounds keep the comparisons in float32.
            x0, y0, x1, y1 = np.array([rectangles[index] for index in boxed], dtype=np.float32).T[:, :, None]
            x, y = view.projected
            inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
            for index, row in zip(boxed, inside, strict=True):
                candidates[index] = row.nonzero()[0]
        for index, rectangle in enumerate(rectangles):
            if rectangle is None:
                candidates[index] = placements[index].cone_candidates(view)
        return candidates

    def _trace(
        self, objects: Sequence[PlacedObject], room: Room | None, origins: np.ndarray, directions: np.ndarray
    ) -> _Trace:
        count = directions.shape[1]
        if room is None:
            distance, plane = np.full(count, np.inf), np.full(count, -1)
        else:
            distance, plane = intersect_planes(room, origins, directions)
        owner = np.full(count, -1, dtype=np.int32)
        normal_of_ray = np.zeros((3, count))
        viewpoint = origins[:, 0] if origins.shape[1] == 1 else (origins.mean(axis=1) if count else np.zeros(3))
        placements = self._placements(objects, viewpoint)
        candidates = self._candidates(placements, origins, directions, distance)
        # Embree per object, nearest bounding sphere first, each within the hits found so far (float32).
        far = (distance * (1.0 + _FAR_SLACK)).astype(np.float32)
        directions32 = directions.astype(np.float32)
        hit_rays, hit_normals, hit_offsets, hit_owners = [], [], [], []
        for index, (placement, rows) in enumerate(zip(placements, candidates, strict=True)):
            if len(rows):
                found = placement.first_faces(select(origins, rows), directions32.take(rows, axis=1), far.take(rows))
                hit = (found["primID"] >= 0).nonzero()[0]
                rows = rows.take(hit)
                far[rows] = found["tfar"].take(hit) * np.float32(1.0 + _FAR_SLACK)
                normal, offset = placement.hit_planes(found["primID"].take(hit))
                hit_rays.append(rows)
                hit_normals.append(normal)
                hit_offsets.append(offset)
                hit_owners.append(np.full(len(rows), index, dtype=np.int32))
        if hit_rays:
            rays, owners = np.concatenate(hit_rays), np.concatenate(hit_owners)
            normal, offsets = np.concatenate(hit_normals, axis=1), np.concatenate(hit_offsets)
            # Every object's hits at once: the exact intersection with the triangle's plane.
            facing = dot(directions.take(rays, axis=1), normal)
            min_facing = np.array([p.min_facing for p in placements])
            steep = np.abs(facing) > min_facing.take(owners)
            height = offsets - dot(select(origins, rays), normal)
            along = height / np.where(steep, facing, 1.0)
            valid = (steep & (along > 0) & (along < distance.take(rays))).nonzero()[0]
            rays, along = rays.take(valid), along.take(valid)
            nearest = _first_of_each_ray(rays, along, count)
            rows = rays.take(nearest)
            winners = valid.take(nearest)
            distance[rows] = along.take(nearest)
            owner[rows] = owners.take(winners)
            scatter(normal_of_ray, rows, normal.take(winners, axis=1))
        return _Trace(distance, plane, owner, normal_of_ray, placements)

    def _hits(
        self,
        trace: _Trace,
        room: Room | None,
        origins: np.ndarray,
        directions: np.ndarray,
        albedo_rows: np.ndarray | None,
    ) -> Hits:
        """Hits with points, normals facing the rays' origins and (for `albedo_rows`) textured albedo."""
        count = directions.shape[1]
        instance = trace.instance
        hit = instance != BACKGROUND_INSTANCE
        want_albedo = hit if albedo_rows is None else hit & albedo_rows
        distance = np.where(hit, trace.distance, 0.0)
        # Component-major float32 results, handed out as (N, 3) views (no transposing copies).
        point = (origins + distance * directions).astype(np.float32)
        normal = np.zeros((3, count), dtype=np.float32)
        albedo = np.zeros((3, count), dtype=np.float32)
        if room is not None:
            on_room = np.where(trace.owner < 0, trace.plane, -1)
            # Room planes are only met from their front: their normals face the ray origins already.
            normal_of, albedo_of = room.surface_tables
            normal = normal_of.take(on_room, axis=1)
            albedo = albedo_of.take(np.where(want_albedo, on_room, -1), axis=1)
            for index, plane in enumerate(room.planes):
                if plane.texture.pattern != "plain":
                    rows = ((on_room == index) & want_albedo).nonzero()[0]
                    factor = texture_factor(plane.texture, plane.local_coordinates(point.take(rows, axis=1)))
                    scatter(albedo, rows, np.clip(column(plane.albedo) * factor, 0.0, 1.0))
        rows = (trace.owner >= 0).nonzero()[0]
        object_normal = normalise(trace.normal.take(rows, axis=1))
        # The project's convention: normals face the viewer, whatever the triangle winding.
        facing_away = dot(object_normal, directions.take(rows, axis=1)) > 0
        scatter(normal, rows, np.where(facing_away, -object_normal, object_normal))
        rows = rows.take(want_albedo.take(rows).nonzero()[0])
        owners = trace.owner.take(rows)
        albedo_of = np.stack([p.obj.albedo for p in trace.placements], axis=1) if trace.placements else np.zeros((3, 0))
        scatter(albedo, rows, albedo_of.take(owners, axis=1))
        for index, placement in enumerate(trace.placements):
            if placement.obj.texture.pattern != "plain":
                textured = rows.take((owners == index).nonzero()[0])
                textured_albedo = placement.albedo(
                    select(origins, textured), directions.take(textured, axis=1), distance.take(textured)
                )
                scatter(albedo, textured, textured_albedo)
        return Hits(
            distance=distance.astype(np.float32), point=point.T, normal=normal.T, instance=instance, albedo=albedo.T
        )

    def occluded(self, objects: Sequence[PlacedObject], origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """(N,) bool: whether each ray meets any object ahead; origins (N, 3) camera frame, directions
        (N, 3), or (3,) for one direction shared by all rays (light rays: the cheapest case).

        The room is not tested: one-sided planes seen from inside would block every ray leaving the room.
        """
        directions = np.asarray(directions, dtype=np.float64)
        if directions.shape != (3,):
            origins, directions = _check_rays(origins, directions)
            return self._occluded_any(objects, origins, directions)
        origins = np.asarray(origins, dtype=np.float64)
        if origins.ndim != 2 or origins.shape[1] != 3 or not np.isfinite(origins).all():
            raise ValueError(f"origins must be finite of shape (N, 3), got {origins.shape}")
        length = float(np.linalg.norm(directions))
        if not np.isfinite(length) or length == 0:
            raise ValueError(f"the shared ray direction must be finite and non-zero, got {directions.tolist()}")
        return self._occluded_parallel(objects, np.ascontiguousarray(origins.T), directions / length)

    def _occluded_any(self, objects: Sequence[PlacedObject], origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """`occluded` of component-major rays (3, N), unit directions."""
        blocked = np.zeros(directions.shape[1], dtype=bool)
        unlimited = np.full(directions.shape[1], np.inf)
        viewpoint = origins.mean(axis=1) if directions.shape[1] else np.zeros(3)
        for placement in self._placements(objects, viewpoint):
            rows = placement.sphere_candidates(origins, directions, unlimited)
            rows = rows.take((~blocked.take(rows)).nonzero()[0])
            if len(rows):
                hit = placement.any_hit(select(origins, rows), directions.take(rows, axis=1))
                blocked[rows.take(hit.nonzero()[0])] = True
        return blocked

    def _occluded_parallel(
        self, objects: Sequence[PlacedObject], origins: np.ndarray, direction: np.ndarray
    ) -> np.ndarray:
        """`occluded` of rays with origins (3, N) and one unit direction (3,)."""
        blocked = np.zeros(origins.shape[1], dtype=bool)
        if not objects or not origins.shape[1]:
            return blocked
        rays = _ParallelRays.of(origins, direction)
        placements = self._placements(objects, origins.mean(axis=1))
        # Every object's shadow rectangle at once (K, N).
        a0, b0, a1, b1, far_end = np.array([p.shadow_bounds(rays) for p in placements]).T[:, :, None]
        inside = (rays.a >= a0) & (rays.a <= a1) & (rays.b >= b0) & (rays.b <= b1) & (rays.along < far_end)
        for placement, row in zip(placements, inside, strict=True):
            rows = (row & ~blocked).nonzero()[0]
            if len(rows):
                hit = placement.any_hit(origins.take(rows, axis=1), column(direction))
                blocked[rows.take(hit.nonzero()[0])] = True
        return blocked
