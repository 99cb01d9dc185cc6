"""Checks of a CAD library (`multisparc cads check`, `multisparc cads folder`): every mesh loads, and its size
is plausible for its class.

The pipeline gives any model its class's size through the pose scale, so a library in other units still
aligns; a size far from the class's (`multisparc.categories`) is yet flagged, because it usually means a
mesh in millimetres or centimetres whose `unit_scale` is missing, and its sizes printed as metres mislead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from multisparc.cad.errors import CadError
from multisparc.cad.index import CadIndex
from multisparc.categories import category_info

# Size against the class's typical size (geometric mean over the axes): a ShapeNet-normalised model (unit
# diagonal) stays within a factor 3 of every class; 1000 or 100 times is a mesh in millimetres or centimetres.
SIZE_FACTOR = 3.0
UNITS: tuple[tuple[float, float, str, float], ...] = (
    (300.0, 3000.0, "millimetres", 0.001),
    (30.0, 300.0, "centimetres", 0.01),
)


@dataclass(frozen=True)
class CadReport:
    """What checking one model found.

    mesh: the loaded mesh, None when it cannot be loaded; error: why not (names the file); size_warning:
    an implausible size for the class (names the file), else None.
    """

    cad_id: str
    mesh: trimesh.Trimesh | None
    extent: np.ndarray | None
    error: str | None = None
    size_warning: str | None = None


def size_problem(category: str, extent: np.ndarray) -> str | None:
    """Why a model of `category` with bounding-box `extent` (3,) in metres is implausible, or None."""
    typical = np.asarray(category_info(category).typical_size)
    ratio = float(np.exp(np.mean(np.log(np.asarray(extent, dtype=np.float64) / typical))))
    size = " x ".join(f"{value:.3g}" for value in extent)
    for low, high, unit, factor in UNITS:
        if low <= ratio < high:
            return (
                f"its size {size} is {ratio:.0f} times a {category}'s usual size: the mesh looks like {unit}; "
                f'give it "unit_scale": [{factor}, {factor}, {factor}] in cads.json'
            )
    if ratio > SIZE_FACTOR or ratio < 1 / SIZE_FACTOR:
        return (
            f"its size {size} is {ratio:.3g} times a {category}'s usual size: is the mesh in metres? "
            '(set "unit_scale" in cads.json)'
        )
    return None


def check_cad(index: CadIndex, cad_id: str) -> CadReport:
    """Load one model of the index and judge its size; never raises for a bad mesh (`CadReport.error`)."""
    entry = index[cad_id]
    try:
        mesh = index.mesh(cad_id)
    except (CadError, ValueError) as error:
        return CadReport(cad_id, None, None, error=str(error))
    extent = index.extent(cad_id)
    problem = size_problem(entry.category, extent)
    return CadReport(cad_id, mesh, extent, size_warning=None if problem is None else f"{entry.path}: {problem}")
