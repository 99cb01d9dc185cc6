"""Loading CAD meshes from files into one validated `trimesh.Trimesh`.

Formats: OBJ (groups and materials; every part is merged into one mesh), PLY, OFF, STL, GLB/GLTF
(scene transforms applied), and the ShapeNet layout: a model folder `<synset>/<id>/` stands for its
`models/model_normalized.obj`.

Frame: the file's own coordinates are the CAD frame (no re-centring, no axis guessing). By
convention +Y is up (ShapeNet, Scan2CAD, SweetHome3D, glTF); a library with another up axis must be
converted before use. `unit_scale` multiplies the coordinates per axis, to make models in
arbitrary units metric.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh

from multisparc.cad.errors import CadEmptyMesh, CadFileNotFound, CadFormatError, CadInvalidGeometry

MESH_SUFFIXES: tuple[str, ...] = (".obj", ".ply", ".off", ".stl", ".glb", ".gltf")
SHAPENET_MODEL = Path("models") / "model_normalized.obj"
_TEXT_SUFFIXES = (".obj", ".off")
# A bounding-box side below this fraction of the longest one is flat: no per-axis scale fits it.
_FLAT_EXTENT = 1e-6

UnitScale = float | Sequence[float] | np.ndarray


def resolve_mesh_path(path: str | Path) -> Path:
    """The mesh file behind `path`: the file itself, or a ShapeNet model folder's
    `models/model_normalized.obj`. Raises CadFileNotFound / CadFormatError."""
    path = Path(path)
    if path.is_dir():
        model = path / SHAPENET_MODEL
        if not model.is_file():
            raise CadFileNotFound(path, f"is a folder without {SHAPENET_MODEL} (ShapeNet layout expected)")
        return model
    if not path.is_file():
        raise CadFileNotFound(path, "no such mesh file")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise CadFormatError(path, f"unsupported mesh format {path.suffix!r}; expected one of {MESH_SUFFIXES}")
    return path


def unit_scale_vector(unit_scale: UnitScale | None, path: str | Path) -> np.ndarray:
    """`unit_scale` (None, a float or 3 floats) as a (3,) float64 vector of positive per-axis factors."""
    if unit_scale is None:
        return np.ones(3)
    scale = np.broadcast_to(np.asarray(unit_scale, dtype=np.float64), (3,)).copy()
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"{path}: unit_scale must be positive and finite, got {unit_scale}")
    return scale


def _parse(path: Path) -> trimesh.Trimesh:
    """Parse `path` with trimesh, merging scenes into one mesh (vertices not yet validated)."""
    try:
        if path.suffix.lower() in _TEXT_SUFFIXES:
            # OBJ/OFF are ASCII; non-ASCII bytes only occur in comments and names, so latin-1 (which
            # decodes any byte) avoids trimesh's optional charset guesser.
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            loaded = trimesh.load(
                io.StringIO(text),
                file_type=path.suffix.lower()[1:],
                resolver=trimesh.resolvers.FilePathResolver(path),
                process=False,
            )
        else:
            loaded = trimesh.load(path, process=False)
    except Exception as error:  # trimesh raises anything from its parsers; report it against the file
        raise CadFormatError(
            path, f"cannot parse as {path.suffix[1:].upper()}: {type(error).__name__}: {error}"
        ) from error
    if isinstance(loaded, trimesh.Scene):
        parts = [geometry for geometry in loaded.dump() if isinstance(geometry, trimesh.Trimesh)]
        return trimesh.util.concatenate(parts) if parts else trimesh.Trimesh()
    if isinstance(loaded, trimesh.Trimesh):
        return loaded
    raise CadEmptyMesh(path, f"no triangles found (it holds a {type(loaded).__name__})")


def load_mesh(path: str | Path, unit_scale: UnitScale | None = None) -> trimesh.Trimesh:
    """Load one CAD model as a single triangle mesh in its CAD frame.

    Args:
        path: mesh file (see MESH_SUFFIXES) or ShapeNet model folder.
        unit_scale: None, a float or (3,) per-axis factors multiplying the file's coordinates
            (e.g. to metres).

    Returns:
        The mesh, vertices (V, 3) float64 in CAD units times `unit_scale`, duplicate vertices merged
        (ignoring texture seams, so connectivity reflects the geometry). Open, non-manifold or
        inconsistently wound meshes are accepted (`mesh.is_watertight` reports it).

    Raises:
        CadFileNotFound, CadFormatError, CadEmptyMesh (no faces), CadInvalidGeometry (NaN/inf
        vertices, zero surface area, or a bounding box flat along an axis); each names the file.
        ValueError for a non-positive `unit_scale`.
    """
    file = resolve_mesh_path(path)
    scale = unit_scale_vector(unit_scale, file)
    if file.stat().st_size == 0:
        raise CadEmptyMesh(file, "file is empty (0 bytes)")
    mesh = _parse(file)
    if len(mesh.faces) == 0:
        raise CadEmptyMesh(file, "no triangles found (not a mesh, or points/lines only)")
    used = np.unique(mesh.faces)
    if not np.all(np.isfinite(mesh.vertices[used])):
        bad = int(np.count_nonzero(~np.all(np.isfinite(mesh.vertices[used]), axis=1)))
        raise CadInvalidGeometry(file, f"{bad} vertices used by faces are NaN or infinite")
    mesh.vertices = mesh.vertices * scale
    mesh.process(merge_tex=True, merge_norm=True)
    mesh.remove_unreferenced_vertices()
    if mesh.area <= 0:
        raise CadInvalidGeometry(file, "all triangles are degenerate (zero surface area)")
    extents = mesh.extents
    if np.any(extents <= _FLAT_EXTENT * extents.max()):
        raise CadInvalidGeometry(file, f"bounding box is flat (extents {extents.tolist()})")
    return mesh
