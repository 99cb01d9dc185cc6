"""Nearest surface sample of a CAD model by table lookup: a voxel grid over the model's samples whose every
cell holds the index of the sample nearest to it.

The depth fits ask for the nearest CAD sample of a few hundred observed points some 10 times per ICP and
tens of ICPs per image; a kd tree answers in about 1 microsecond a point and must be rebuilt for every
scale, while this table answers a batch in a few vectorised array operations and is built once per model
(scipy's Euclidean distance transform with `return_indices` finds each cell's nearest occupied cell).

The answer is approximate: the table gives the sample of the nearest occupied cell, which is then
replaced by the nearest to the point among that sample's NEIGHBOURS nearest samples (about 99 % of the
answers are the exact nearest sample for points near the surface; the others a sample next to it). A fit's
model is stretched per axis: the table is read in the unstretched frame and the candidates compared in the
stretched one (`query`'s scale), else about one answer in seven is not the nearest for a stretch of 1.3. Points
outside the grid are read at its nearest cell (they lie farther than `margin` from the model, where a fit
drops its pairs anyway).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

# The grid's cell budget: about 2 cm cells for a model of a cubic metre with its margin; a table of
# int32 indices of 1 MB built in about 40 ms.
MAX_CELLS = 2**18
MIN_CELL = 0.01
# The cell's sample is then replaced by the nearest of its NEIGHBOURS nearest samples (itself included):
# 99 % of the answers are then the exact nearest sample for points near a model's surface.
NEIGHBOURS = 12


class NearestSampleGrid:
    """For samples (M, 3) in a model's frame (metres), the index of the (approximately) nearest sample to
    any point of that frame (module docstring). margin: metres added around the samples' bounding box."""

    def __init__(self, samples: np.ndarray, margin: float = 0.15) -> None:
        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim != 2 or samples.shape[1] != 3 or not len(samples):
            raise ValueError(f"samples must be a non-empty (M, 3) array, got shape {samples.shape}")
        self.low = samples.min(axis=0) - margin
        size = samples.max(axis=0) + margin - self.low
        self.cell = max(MIN_CELL, float(np.prod(size) / MAX_CELLS) ** (1.0 / 3.0))
        self.shape = np.maximum(np.ceil(size / self.cell).astype(np.int64), 1)
        cells = self._cells(samples)
        # One sample per occupied cell: the nearest to the cell's centre (written last, so it wins).
        centres = self.low + (np.stack(np.unravel_index(cells, self.shape), axis=1) + 0.5) * self.cell
        order = np.argsort(-np.linalg.norm(samples - centres, axis=1), kind="stable")
        owner = np.full(int(np.prod(self.shape)), -1, dtype=np.int64)
        owner[cells[order]] = order
        empty = (owner < 0).reshape(tuple(self.shape))
        nearest = ndimage.distance_transform_edt(empty, return_distances=False, return_indices=True)
        nearest_cell = np.ravel_multi_index(tuple(nearest.reshape(3, -1)), tuple(self.shape))
        self.table = owner[nearest_cell].astype(np.int32)
        self.axes = tuple(np.ascontiguousarray(samples[:, i]) for i in range(3))
        # Each sample's nearest samples (itself among them): a lookup ends at the nearest of these.
        k = min(NEIGHBOURS, len(samples))
        self.neighbours = cKDTree(samples).query(samples, k=k)[1].reshape(len(samples), k)

    def _cells(self, points: np.ndarray) -> np.ndarray:
        """Flat index (N,) of the cell of each point (N, 3), points outside read at the nearest cell."""
        ijk = np.floor((points - self.low) / self.cell).astype(np.int64)
        ijk = np.clip(ijk, 0, self.shape - 1)
        return np.ravel_multi_index(tuple(ijk.T), tuple(self.shape))

    def query(self, points: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
        """Index (N,) int of the nearest sample of each point (N, 3), the model's frame, metres.

        scale: (3,) or (N, 3) per-axis scales of a stretched copy of the model in which nearness counts
        (the points given in the unstretched frame): the candidates are found in this frame and the
        nearest of them is taken in the stretched one, where the fits measure their distances."""
        points = np.asarray(points, dtype=np.float64)
        candidates = self.neighbours[self.table[self._cells(points)]]  # (N, k)
        weight = np.ones((1, 3)) if scale is None else np.broadcast_to(np.square(scale), points.shape)
        # Per coordinate on (N, k) arrays: numpy reduces a last axis of 3 slowly.
        distance = sum(
            weight[:, i, None] * (axis[candidates] - points[:, i, None]) ** 2 for i, axis in enumerate(self.axes)
        )
        return candidates[np.arange(len(points)), np.argmin(distance, axis=1)]
