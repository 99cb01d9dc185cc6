"""The 9 object classes of Scan2CAD / ROCA with their real-world size statistics.

Sizes are physical bounding-box extents in metres along the CAD axes (x = width, y = height (up),
z = depth, front facing +z). They drive scene sampling, training initialisations and the test-time
initial scale, so that any CAD library (metric, ShapeNet-normalised, arbitrary units made metric by
`unit_scale`) gets sensible scales: the pose scale is always `physical size / CAD extent`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CATEGORIES: tuple[str, ...] = (
    "bathtub",
    "bed",
    "bin",
    "bookshelf",
    "cabinet",
    "chair",
    "display",
    "sofa",
    "table",
)

# Other spellings found in the field's files, mapped to our names.
ALIASES: dict[str, str] = {
    "bookcase": "bookshelf",
    "trashbin": "bin",
    "trash_bin": "bin",
    "tv": "display",
    "monitor": "display",
    "bath": "bathtub",
}


class UnknownCategoryError(ValueError):
    """A class name that is none of the 9 classes (nor a known alias)."""


@dataclass(frozen=True)
class CategoryInfo:
    """Size statistics of one class.

    Attributes:
        name: class name.
        shapenet_synset: ShapeNet synset id.
        typical_size: (3,) typical physical extent (x, y, z) in metres.
        min_size / max_size: (3,) plausible range of physical extents in metres.
        default_sym: the most common Scan2CAD symmetry tag of the class.
    """

    name: str
    shapenet_synset: str
    typical_size: tuple[float, float, float]
    min_size: tuple[float, float, float]
    max_size: tuple[float, float, float]
    default_sym: str


_INFO: dict[str, CategoryInfo] = {
    info.name: info
    for info in (
        CategoryInfo("bathtub", "02808440", (1.65, 0.55, 0.78), (1.2, 0.4, 0.65), (1.95, 0.7, 1.0), "none"),
        CategoryInfo("bed", "02818832", (1.5, 0.9, 2.1), (0.85, 0.35, 1.85), (2.1, 1.3, 2.35), "none"),
        CategoryInfo("bin", "02747177", (0.32, 0.45, 0.32), (0.18, 0.25, 0.18), (0.55, 0.85, 0.55), "inf"),
        CategoryInfo("bookshelf", "02871439", (0.9, 1.8, 0.33), (0.4, 0.7, 0.22), (1.8, 2.3, 0.5), "none"),
        CategoryInfo("cabinet", "02933112", (0.9, 1.0, 0.5), (0.35, 0.45, 0.3), (2.2, 2.3, 0.7), "none"),
        CategoryInfo("chair", "03001627", (0.55, 0.9, 0.58), (0.38, 0.65, 0.4), (0.85, 1.2, 0.85), "none"),
        CategoryInfo("display", "03211117", (0.6, 0.45, 0.18), (0.35, 0.25, 0.03), (1.5, 1.0, 0.35), "none"),
        CategoryInfo("sofa", "04256520", (2.0, 0.85, 0.92), (1.2, 0.6, 0.7), (2.9, 1.05, 1.8), "none"),
        CategoryInfo("table", "04379243", (1.2, 0.74, 0.8), (0.45, 0.35, 0.45), (2.4, 0.82, 1.3), "2"),
    )
}


def canonical_category(name: str) -> str:
    """Return our name for a class name or alias; raise UnknownCategoryError otherwise."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in _INFO:
        raise UnknownCategoryError(f"unknown category {name!r}; expected one of {', '.join(CATEGORIES)}")
    return key


def category_info(name: str) -> CategoryInfo:
    """Size statistics of a class (aliases accepted)."""
    return _INFO[canonical_category(name)]


def typical_scale(category: str, cad_extent: np.ndarray) -> np.ndarray:
    """Isotropic scale (3,) that gives a CAD of extent `cad_extent` (3,) its class's typical size.

    Isotropic (geometric mean over the axes) so the CAD keeps its own proportions; the network
    refines the per-axis scale.
    """
    extent = np.asarray(cad_extent, dtype=np.float64)
    if extent.shape != (3,) or not np.all(np.isfinite(extent)) or np.any(extent <= 0):
        raise ValueError(f"CAD extent must be 3 positive finite numbers, got {extent}")
    ratio = np.asarray(category_info(category).typical_size) / extent
    return np.full(3, float(np.exp(np.mean(np.log(ratio)))))


def scale_range(category: str, cad_extent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis scale bounds (3,), (3,) that keep a CAD of `cad_extent` within its class's size range."""
    info = category_info(category)
    extent = np.asarray(cad_extent, dtype=np.float64)
    return np.asarray(info.min_size) / extent, np.asarray(info.max_size) / extent
