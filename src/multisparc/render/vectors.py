"""3-vector arithmetic on component-major arrays (3, N), written out component by component.

The renderer keeps batches of rays and points as (3, N) arrays: every component is one contiguous
row, which makes these elementwise forms several times faster than broadcasting over (N, 3). They are
written out rather than left to matmul, dot or einsum on purpose: those hand arrays to BLAS kernels
whose rounding can depend on a row's position in the batch, while elementwise arithmetic gives every
ray the same bits in any batch, which is what makes a sparse render agree with the full frame.
"""

from __future__ import annotations

import numpy as np


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Column-wise dot product of a (3, N) and b (3, N) (either may be (3, 1)); returns (N,)."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def transform(matrix: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """matrix (M, 3) applied to every column of vectors (3, N): returns (M, N) columns `matrix @ v`."""
    return matrix[:, 0:1] * vectors[0] + matrix[:, 1:2] * vectors[1] + matrix[:, 2:3] * vectors[2]


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of 3-vectors a and b, (3,) or (3, N) (either may be (3, 1)); far cheaper than
    `np.cross` on single vectors."""
    return np.stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Columns of vectors (3, N) scaled to unit length; zero columns stay zero."""
    length = np.sqrt(dot(vectors, vectors))
    return vectors / np.where(length > 0, length, 1.0)


def column(vector: np.ndarray) -> np.ndarray:
    """(3,) -> (3, 1), to broadcast one vector against a (3, N) batch."""
    return vector[:, None]


def select(vectors: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Columns `indices` of vectors (3, N); a single shared column (3, 1) (one origin for all rays) is
    returned as it is, to keep broadcasting."""
    return vectors if vectors.shape[1] == 1 else vectors.take(indices, axis=1)


def scatter(target: np.ndarray, indices: np.ndarray, values: np.ndarray) -> None:
    """target[:, indices] = values for target (3, N), indices (M,) and values (3, M) or (3, 1), one
    component at a time (several times faster than fancy assignment to a 2D slice)."""
    for component in range(3):
        target[component][indices] = values[component]
