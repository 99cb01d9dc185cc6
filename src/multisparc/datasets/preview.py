"""Contact sheet of scene bundles: RGB with boxes, depth, normals and instance masks, one row per scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from multisparc.datasets.bundle import SceneBundle

_MASK_COLOURS = np.array(
    [[0.9, 0.3, 0.2], [0.2, 0.6, 0.9], [0.3, 0.8, 0.3], [0.9, 0.7, 0.1], [0.7, 0.3, 0.8], [0.1, 0.8, 0.8]]
)


def _mask_image(bundle: SceneBundle) -> np.ndarray:
    """(H, W, 3) float: the image darkened, each detection's mask tinted in its own colour."""
    image = bundle.observation.image.astype(np.float32) / 255.0 * 0.35
    for k, det in enumerate(bundle.detections):
        if det.mask is not None:
            image[det.mask] = 0.35 * image[det.mask] + 0.65 * _MASK_COLOURS[k % len(_MASK_COLOURS)]
    return image


def render_bundle_sheet(bundles: list[SceneBundle], out_png: Path, max_depth: float = 8.0) -> Path:
    """Write a PNG with one row per bundle: RGB + boxes, depth (metres), normals, masks."""
    if not bundles:
        raise ValueError("no scene bundles to draw")
    rows = len(bundles)
    figure = Figure(figsize=(13, 2.6 * rows), dpi=90)
    FigureCanvasAgg(figure)
    for row, bundle in enumerate(bundles):
        obs = bundle.observation
        axes = [figure.add_subplot(rows, 4, 4 * row + col + 1) for col in range(4)]
        axes[0].imshow(obs.image)
        for k, det in enumerate(bundle.detections):
            x1, y1, x2, y2 = det.bbox
            colour = _MASK_COLOURS[k % len(_MASK_COLOURS)]
            axes[0].add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.2))
            axes[0].text(x1, y1 - 2, det.category, color=colour, fontsize=7)
        if obs.depth is not None:
            shown = axes[1].imshow(np.where(obs.depth > 0, obs.depth, np.nan), cmap="turbo", vmin=0, vmax=max_depth)
            figure.colorbar(shown, ax=axes[1], fraction=0.035, label="depth [m]")
        if obs.normals is not None:
            axes[2].imshow(np.clip((obs.normals * [1, -1, -1] + 1.0) / 2.0, 0, 1))
        axes[3].imshow(_mask_image(bundle))
        for ax, title in zip(axes, ("RGB + detections", "depth", "normals", "masks"), strict=True):
            ax.set_title(f"{bundle.name}: {title}" if title.startswith("RGB") else title, fontsize=8)
            ax.axis("off")
    figure.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png)
    return out_png
