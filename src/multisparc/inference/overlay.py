"""Pictures of an alignment: the CAD models rendered over the image, coloured by their score.

Two panels side by side: the chosen hypothesis's initial pose of every detection, and its aligned pose.
Models are ray cast (`multisparc.render`) and blended translucently over the photo, with an opaque
outline; their colour runs from red (score 0) through yellow to green (score 1), the score being the
network's for that very pose. Detection boxes and ids are drawn on both panels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from multisparc.cad import CadIndex
from multisparc.datasets.bundle import Observation
from multisparc.geometry import Pose
from multisparc.inference.result import AlignmentResult
from multisparc.render import Lighting, PlacedObject, RayCaster, render_full

SCORE_COLORMAP = "RdYlGn"
# Bright and without shadows: the colour must stay readable as a score; the light still shows the shape.
_LIGHTING = Lighting(ambient=0.55, diffuse=0.45, shadows=False)
# Rec. 601 luma weights: labels are written black on light colours, white on dark ones.
_LUMA = np.array([0.299, 0.587, 0.114])
# Panels narrower than this (pixels) are drawn enlarged so that titles and labels stay legible.
_MIN_PANEL_WIDTH = 360


def _resized(observation: Observation, max_side: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The image (h, w, 3) uint8 shrunk so its longer side is at most max_side, its intrinsics (3, 3)
    and the factor applied. Pixel centres stay centres: u' = f (u + 1/2) - 1/2."""
    image, K = observation.image, np.asarray(observation.camera.K, dtype=np.float64)
    height, width = image.shape[:2]
    factor = min(1.0, max_side / max(width, height))
    if factor == 1.0:
        return image, K, factor
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    fx, fy = size[0] / width, size[1] / height
    scaled = np.diag([fx, fy, 1.0]) @ K
    scaled[0, 2] += 0.5 * fx - 0.5
    scaled[1, 2] += 0.5 * fy - 0.5
    return small, scaled, factor


def composite(
    image: np.ndarray,
    K: np.ndarray,
    caster: RayCaster,
    cad_ids: Sequence[str],
    poses: Pose,
    colours: np.ndarray,
    opacity: float = 0.6,
) -> np.ndarray:
    """image (H, W, 3) uint8 with the CADs rendered over it: shaded models in colours (K, 3) in [0, 1]
    blended with `opacity`, their silhouette edges opaque. poses batch shape (K,), camera frame; K (3, 3)."""
    height, width = image.shape[:2]
    picture = image.astype(np.float64) / 255.0
    if not cad_ids:
        return picture
    R, t, s = poses.to_numpy()
    objects = [PlacedObject(k + 1, cad_id, R[k], t[k], s[k], albedo=colours[k]) for k, cad_id in enumerate(cad_ids)]
    frame = render_full(caster, objects, None, K, width, height, _LIGHTING)
    covered = frame.instance >= 1
    shaded = frame.rgb.astype(np.float64) / 255.0
    picture[covered] = (1 - opacity) * picture[covered] + opacity * shaded[covered]
    instance = np.pad(frame.instance, 1, mode="edge")
    edge = covered & (
        (instance[1:-1, 2:] != frame.instance)
        | (instance[1:-1, :-2] != frame.instance)
        | (instance[2:, 1:-1] != frame.instance)
        | (instance[:-2, 1:-1] != frame.instance)
    )
    picture[edge] = colours[frame.instance[edge] - 1]
    return picture


def render_overlay(
    observation: Observation, result: AlignmentResult, cads: CadIndex, out_png: str | Path, max_side: int = 640
) -> Path:
    """Write a PNG of the initial and the aligned poses of `result` over the observation's image.

    The image is shrunk to at most `max_side` pixels on its longer side before rendering. Returns the path.
    """
    out_png = Path(out_png)
    image, K, factor = _resized(observation, max_side)
    caster = RayCaster(cads)
    colormap = colormaps[SCORE_COLORMAP]
    cad_ids = [obj.cad for obj in result.objects]
    trajectory, scores = result.chosen_trajectory(), result.chosen_scores()
    panels = [("initial poses (chosen hypothesis)", 0), (f"aligned after {len(scores) - 1} refinements", -1)]

    height, width = image.shape[:2]
    zoom = max(1.0, _MIN_PANEL_WIDTH / width)
    figure = Figure(figsize=(2 * zoom * width / 100 + 1.2, zoom * height / 100 + 0.6), dpi=100, layout="constrained")
    axes = figure.subplots(1, 2)
    for axis, (title, step) in zip(axes, panels, strict=True):
        colours = colormap(scores[step])[:, :3] if cad_ids else np.zeros((0, 3))
        axis.imshow(composite(image, K, caster, cad_ids, trajectory.index(step), colours))
        for obj, box, colour in zip(result.objects, result.boxes, colours, strict=True):
            x1, y1, x2, y2 = (box + 0.5) * factor - 0.5
            axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.2))
            axis.text(
                x1,
                y1,
                f"{obj.id} {obj.category}",
                color="black" if colour @ _LUMA > 0.5 else "white",
                fontsize=7,
                va="bottom",
                bbox={"facecolor": colour, "edgecolor": "none", "pad": 1},
            )
        axis.set_title(title if cad_ids else "no detections aligned", fontsize=9)
        axis.set_axis_off()
    figure.colorbar(
        ScalarMappable(Normalize(0.0, 1.0), colormap), ax=axes, fraction=0.025, label="classification score"
    )
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png)
    return out_png
