"""Area-weighted surface samples with outward normals, and their on-disk cache.

Real CAD files break the assumption that a face's winding gives its outside: ShapeNet and
SweetHome3D models are open, carry doubled faces with opposite winding (double-sided surfaces) or
flip some faces. `sample_surface` therefore decides each normal's sign by visibility from outside
(ray casting against the mesh), never from the winding alone.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import trimesh

from multisparc.cad.io import UnitScale, load_mesh, resolve_mesh_path, unit_scale_vector

# Ray origins start this fraction of the mesh scale (bounding-box diagonal) off the surface: far
# above float32 precision, far below the thickness of real boards and panels.
_RAY_OFFSET = 1e-5
# Extra rays per side for samples whose two normal rays do not settle the sign.
_JITTER_RAYS = 16


def sample_surface(mesh: trimesh.Trimesh, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw `n` area-weighted points on `mesh` with outward unit normals, reproducibly.

    Orientation of each sample's normal (its sampled face's normal up to sign):
    1. Cast one ray from the point, offset by a small epsilon, along +n and one along -n; if exactly
       one of them escapes the mesh, the normal points to that side (the side seen from outside).
    2. If both or neither escape (the floor of an open box, a chair leg facing another leg), cast
       `_JITTER_RAYS` rays in each hemisphere (the Lambertian lobe about +-n) and take the side with
       more escapes.
    3. A sample still undecided is seen from neither side: it lies inside another part (CAD models
       are mostly unions of interpenetrating closed parts). Steps 1-2 are repeated against its own
       connected component alone, which makes it outward for its own part; a tie left after that
       keeps the face's winding. (Counting crossings instead would flip exactly these samples: from
       inside another solid, the outside of a part is behind an odd number of walls.)
    All rays are cast in batches with the embree intersector, so 10k samples take milliseconds.

    Args:
        mesh: triangle mesh with positive area, any winding, open or closed.
        n: number of samples (>= 1).
        seed: seed of the sampling and of the jittered rays; the same seed gives the same output.

    Returns:
        points (n, 3) float32 in the mesh frame and units; normals (n, 3) float32 unit vectors.
    """
    if n < 1:
        raise ValueError(f"sample_surface: n must be at least 1, got {n}")
    if mesh.area <= 0:
        raise ValueError("sample_surface: mesh has no surface area")
    points, face_index = trimesh.sample.sample_surface(mesh, n, seed=seed)
    normals = mesh.face_normals[face_index]
    signs = _outward_signs(mesh, points, normals, face_index, np.random.default_rng([seed, 1]))
    return points.astype(np.float32), (normals * signs[:, None]).astype(np.float32)


def _outward_signs(
    mesh: trimesh.Trimesh, points: np.ndarray, normals: np.ndarray, face_index: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(N,) +1 or -1 per sample: the sign that turns the normal (N, 3) of its face (N,) outward
    (steps in `sample_surface`)."""
    offset = _RAY_OFFSET * mesh.scale
    signs, undecided = _visible_side(mesh, points, normals, offset, rng)
    if undecided.size:
        part_of_face = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
        part_of_sample = part_of_face[face_index[undecided]]
        for part in np.unique(part_of_sample):
            members = undecided[part_of_sample == part]
            part_mesh = trimesh.Trimesh(mesh.vertices, mesh.faces[part_of_face == part], process=False)
            signs[members], _ = _visible_side(part_mesh, points[members], normals[members], offset, rng)
    return signs


def _visible_side(
    mesh: trimesh.Trimesh, points: np.ndarray, normals: np.ndarray, offset: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-2 of `sample_surface`: (N,) signs (+1 where undecided) and the undecided indices."""
    escape_plus = _escapes(mesh, points + offset * normals, normals)
    escape_minus = _escapes(mesh, points - offset * normals, -normals)
    signs = np.where(escape_minus & ~escape_plus, -1.0, 1.0)
    tied = np.flatnonzero(escape_plus == escape_minus)
    if not tied.size:
        return signs, tied
    votes = _jittered_escapes(mesh, points[tied], normals[tied], offset, rng)
    signs[tied] = np.where(votes < 0, -1.0, 1.0)
    return signs, tied[votes == 0]


def _escapes(mesh: trimesh.Trimesh, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(N,) bool: the ray from each origin (N, 3) along its direction (N, 3) hits nothing."""
    return ~mesh.ray.intersects_any(origins, directions)


def _jittered_escapes(
    mesh: trimesh.Trimesh, points: np.ndarray, normals: np.ndarray, offset: float, rng: np.random.Generator
) -> np.ndarray:
    """(N,) escapes on the +n side minus escapes on the -n side over `_JITTER_RAYS` rays per side.

    Directions are n + (uniform unit vector), the Lambertian lobe, so few rays graze the surface.
    """
    count = len(points)
    random_units = trimesh.util.unitize(rng.normal(size=(count * _JITTER_RAYS, 3)))
    lobe = trimesh.util.unitize(np.repeat(normals, _JITTER_RAYS, axis=0) + random_units)
    origins = np.repeat(points, _JITTER_RAYS, axis=0)
    start = offset * np.repeat(normals, _JITTER_RAYS, axis=0)
    plus = _escapes(mesh, origins + start, lobe).reshape(count, _JITTER_RAYS).sum(axis=1)
    minus = _escapes(mesh, origins - start, -lobe).reshape(count, _JITTER_RAYS).sum(axis=1)
    return plus - minus


def default_cache_root() -> Path:
    """`$MULTISPARC_CACHE/samples` if that variable is set, else `~/.cache/multisparc/samples`."""
    base = os.environ.get("MULTISPARC_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "multisparc") / "samples"


class SampleCache:
    """Surface samples of CAD files, stored on disk as `<root>/<key>.npz`.

    The key is the sha1 of the mesh file's bytes, `unit_scale`, `n`, `seed` and FORMAT_VERSION, so
    an edited file or a new sampler version never serves stale samples, and renaming or moving a
    file keeps its samples. (A glTF's external buffers are not part of the key.) Files are written
    to a temporary file and renamed into place, so concurrent workers never read half a file.
    """

    FORMAT_VERSION = 1

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()

    def key(self, path: str | Path, n: int, seed: int = 0, unit_scale: UnitScale | None = None) -> str:
        """Hex sha1 identifying the samples of mesh `path` (file or ShapeNet folder)."""
        file = resolve_mesh_path(path)
        digest = hashlib.sha1(file.read_bytes())
        scale = unit_scale_vector(unit_scale, file)
        digest.update(f"|v{self.FORMAT_VERSION}|n={n}|seed={seed}|scale={scale.tolist()}".encode())
        return digest.hexdigest()

    def file_for(self, path: str | Path, n: int, seed: int = 0, unit_scale: UnitScale | None = None) -> Path:
        """Where the samples of these arguments live (whether or not they exist yet)."""
        return self.root / f"{self.key(path, n, seed, unit_scale)}.npz"

    def get(
        self, path: str | Path, n: int, seed: int = 0, unit_scale: UnitScale | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`sample_surface(load_mesh(path, unit_scale), n, seed)`, served from disk when cached.

        Returns points (n, 3) float32 in the CAD frame times `unit_scale`, and outward unit
        normals (n, 3) float32.
        """
        cached = self.file_for(path, n, seed, unit_scale)
        if cached.is_file():
            try:
                with np.load(cached) as stored:
                    return stored["points"], stored["normals"]
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                pass  # unreadable entry (e.g. a damaged disk): recompute and overwrite it below
        points, normals = sample_surface(load_mesh(path, unit_scale), n, seed)
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.root, suffix=".tmp", delete=False) as temporary:
            np.savez(temporary, points=points, normals=normals)
        os.replace(temporary.name, cached)
        return points, normals
