"""Per-pixel access to an observation: one interface for full images and for sparse renders.

Token sampling (`multisparc.inputs`) only ever asks "what are RGB, depth, normal and the mask of
detection k at these pixels?". A real image answers by indexing arrays (`ImagePixelSource`); a
synthetic scene answers by ray casting just those pixels (`multisparc.scenes.RenderedPixelSource`),
which is what makes on-the-fly synthetic training cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from multisparc.datasets.bundle import Detection, Observation


@dataclass
class PixelData:
    """Observation values at N pixels.

    rgb (N, 3) float32 in [0, 1]; depth (N,) float32 z-depth metres, 0 = unknown;
    normals (N, 3) float32 camera frame facing the camera, zero = unknown; mask (N,) float32 in {0, 1}:
    whether the pixel belongs to the asked detection's instance mask.
    """

    rgb: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    mask: np.ndarray


class PixelSource(Protocol):
    """Anything that can be sampled at integer pixels (col, row) inside the image."""

    K: np.ndarray
    width: int
    height: int

    def sample(self, pixels: np.ndarray, detection_index: np.ndarray) -> PixelData:
        """Values at `pixels` (N, 2) int (col, row), mask of detection `detection_index` (N,) int."""
        ...


class ImagePixelSource:
    """Pixel access to a full observation (real photos, bundles).

    Without an instance mask a detection's mask is its box: the best a box-only detector can offer.
    Missing depth or normals are an error here, since the network needs them.
    """

    def __init__(self, observation: Observation, detections: list[Detection]):
        if observation.depth is None:
            raise ValueError("observation has no depth map (depth.npy or depth.png); alignment needs depth")
        if observation.normals is None:
            raise ValueError("observation has no normal map (normals.npy); alignment needs surface normals")
        self.K = observation.camera.K
        self.width = observation.camera.width
        self.height = observation.camera.height
        self._rgb = observation.image
        self._depth = observation.depth
        self._normals = observation.normals
        self._detections = detections

    def sample(self, pixels: np.ndarray, detection_index: np.ndarray) -> PixelData:
        cols, rows = pixels[:, 0], pixels[:, 1]
        mask = np.zeros(len(pixels), dtype=np.float32)
        for index in np.unique(detection_index):
            chosen = detection_index == index
            det = self._detections[int(index)]
            if det.mask is not None:
                mask[chosen] = det.mask[rows[chosen], cols[chosen]]
            else:
                x1, y1, x2, y2 = det.bbox
                c, r = cols[chosen], rows[chosen]
                mask[chosen] = (c >= x1) & (c <= x2) & (r >= y1) & (r <= y2)
        return PixelData(
            rgb=self._rgb[rows, cols].astype(np.float32) / 255.0,
            depth=self._depth[rows, cols],
            normals=self._normals[rows, cols],
            mask=mask,
        )
