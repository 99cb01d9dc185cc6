"""CAD models: loading meshes, surface samples with outward normals, and the CAD index.

Every mesh is in its CAD frame: the file's own coordinates (+Y up by convention), times the entry's
`unit_scale`, in metres once indexed.
"""

from multisparc.cad.errors import (
    CadEmptyMesh,
    CadError,
    CadFileNotFound,
    CadFormatError,
    CadIndexError,
    CadInvalidGeometry,
    UnknownCadId,
)
from multisparc.cad.index import CadEntry, CadIndex
from multisparc.cad.io import MESH_SUFFIXES, load_mesh, resolve_mesh_path
from multisparc.cad.sampling import SampleCache, default_cache_root, sample_surface

__all__ = [
    "MESH_SUFFIXES",
    "CadEmptyMesh",
    "CadEntry",
    "CadError",
    "CadFileNotFound",
    "CadFormatError",
    "CadIndex",
    "CadIndexError",
    "CadInvalidGeometry",
    "SampleCache",
    "UnknownCadId",
    "default_cache_root",
    "load_mesh",
    "resolve_mesh_path",
    "sample_surface",
]
