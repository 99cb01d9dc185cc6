"""Contact sheet: a grid of shaded pictures of CAD meshes, to check a library at a glance.

Every mesh is drawn in its own CAD frame (+Y up, front +Z) from the same 3/4 view, front-right and
slightly above, with an orthographic camera, equal axis scales and Lambert shading from the face
normals. Rendering uses matplotlib's Agg canvas only (no window, no global backend switch).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

# CAD (x, y, z) with Y up -> matplotlib (x, -z, y) with Z up; a proper rotation, so no mirror.
_CAD_TO_PLOT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# Light from the front-right and above, in the CAD frame.
_LIGHT = np.array([0.45, 0.75, 0.5]) / np.linalg.norm([0.45, 0.75, 0.5])
_BASE_COLOUR = np.array([0.62, 0.72, 0.86])
_AMBIENT = 0.3
_CELL_INCHES = 2.4
_TITLE_INCHES = 0.5
_ELEVATION_DEG, _AZIMUTH_DEG = 22.0, -55.0


def _eye_direction() -> np.ndarray:
    """(3,) unit vector from the model towards the viewer, in the CAD frame."""
    elevation, azimuth = np.radians(_ELEVATION_DEG), np.radians(_AZIMUTH_DEG)
    in_plot = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    return _CAD_TO_PLOT.T @ in_plot


def _visible_triangles(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Front-facing triangles (F, 3, 3) and their unit normals (F, 3), CAD frame.

    matplotlib draws polygons back to front by their mean depth (painter's algorithm), so back
    faces are culled and large faces split to keep the ordering right.
    """
    vertices, faces = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=0.08 * mesh.scale)
    fine = trimesh.Trimesh(vertices, faces, process=False)
    facing = fine.face_normals @ _eye_direction() > 0
    return fine.triangles[facing], fine.face_normals[facing]


def _shaded_colours(face_normals: np.ndarray) -> np.ndarray:
    """(F, 3) unit normals in the CAD frame -> (F, 3) RGB in [0, 1], Lambert plus ambient."""
    lambert = np.clip(face_normals @ _LIGHT, 0.0, 1.0)
    return np.clip(_BASE_COLOUR * (_AMBIENT + (1 - _AMBIENT) * lambert)[:, None], 0.0, 1.0)


def render_contact_sheet(meshes: Sequence[tuple[str, trimesh.Trimesh]], out_png: Path, cols: int = 6) -> Path:
    """Draw `meshes` (title, mesh in its CAD frame, metres) in a grid of `cols` columns, each cell
    scaled to its own model, and save the picture to `out_png`. Returns out_png."""
    if not meshes:
        raise ValueError(f"render_contact_sheet({out_png}): no meshes to draw")
    if cols < 1:
        raise ValueError(f"render_contact_sheet({out_png}): cols must be at least 1, got {cols}")
    out_png = Path(out_png)
    cols = min(cols, len(meshes))
    rows = -(-len(meshes) // cols)
    height = rows * (_CELL_INCHES + _TITLE_INCHES)
    figure = Figure(figsize=(cols * _CELL_INCHES, height), dpi=110)
    for cell, (title, mesh) in enumerate(meshes):
        if len(mesh.faces) == 0:
            raise ValueError(f"render_contact_sheet({out_png}): mesh {title!r} has no faces")
        axes = figure.add_subplot(rows, cols, cell + 1, projection="3d")
        triangles, normals = _visible_triangles(mesh)
        colours = _shaded_colours(normals)
        axes.add_collection3d(
            Poly3DCollection(triangles @ _CAD_TO_PLOT.T, facecolors=colours, edgecolors=colours, linewidths=0.6)
        )
        corners = mesh.bounds @ _CAD_TO_PLOT.T
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        axes.set_xlim(lo[0], hi[0])
        axes.set_ylim(lo[1], hi[1])
        axes.set_zlim(lo[2], hi[2])
        axes.set_box_aspect(np.maximum(hi - lo, 1e-3))
        axes.set_proj_type("ortho")
        axes.view_init(elev=_ELEVATION_DEG, azim=_AZIMUTH_DEG)
        axes.set_axis_off()
        axes.set_title(title, fontsize=8)
    figure.subplots_adjust(
        left=0.01,
        right=0.99,
        bottom=0.01,
        top=1 - _TITLE_INCHES / height,
        wspace=0.05,
        hspace=_TITLE_INCHES / _CELL_INCHES,
    )
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png)
    return out_png
