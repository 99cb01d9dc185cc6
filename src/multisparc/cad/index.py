"""The CAD index: which CAD models exist, where their meshes are, their class and symmetry.

On disk it is the `cads.json` of the scene bundle format:
`{"<cad id>": {"path": "<relative to cads.json>", "category": str, "sym": str, "unit_scale": [3] (optional)}}`.
`category` is one of the 9 classes of `multisparc.categories.CATEGORIES` (aliases such as `trashbin`
are read as their class), `sym` a Scan2CAD symmetry tag (`none`, `2`, `4`, `inf`: the model looks
the same after turning about its +Y axis by 180 deg, 90 deg or any angle), `unit_scale` per-axis
factors that make the file's coordinates metres. `path` may name a mesh file or a ShapeNet model
folder (see `multisparc.cad.io`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from multisparc.cad.errors import CadFileNotFound, CadIndexError, UnknownCadId
from multisparc.cad.io import MESH_SUFFIXES, SHAPENET_MODEL, load_mesh
from multisparc.cad.nearest import NearestSampleGrid
from multisparc.cad.sampling import SampleCache
from multisparc.categories import CATEGORIES, canonical_category, category_info
from multisparc.geometry.errors import SYMMETRIES

CategoryOf = Callable[[Path], str | None] | Mapping[str, str]

SWEETHOME3D_CATALOGUE = "DefaultFurnitureCatalog.properties"
# SweetHome3D catalogue models (`id#N=eTeks#<name>`) with a Scan2CAD class; others are not indexed.
SWEETHOME3D_CLASSES: dict[str, str] = {
    "bed140x190": "bed",
    "bed90x190": "bed",
    "bookcase": "bookshelf",
    "filledBookcase": "bookshelf",
    "chair": "chair",
    "chair2": "chair",
    "armchair": "chair",
    "armchair2": "chair",
    "stool": "chair",
    "sofa": "sofa",
    "sofa2": "sofa",
    "cornerSofa": "sofa",
    "table": "table",
    "roundTable": "table",
    "squareTable": "table",
    "coffeeTable": "table",
    "desk": "table",
    "kitchenCabinet": "cabinet",
    "glassDoorCabinet": "cabinet",
    "dresser": "cabinet",
    "wardrobe": "cabinet",
    "chest": "cabinet",
    "bedsideTable": "cabinet",
    "tvUnit": "cabinet",
    "bath": "bathtub",
    "fittedBath": "bathtub",
    "flatTV": "display",
}
# Symmetry of the SweetHome3D models that have one, checked by turning their sampled surfaces about
# +Y: the round table (any angle), the square table and the square four-legged stool (90 deg), the
# plain rectangular dining table (180 deg). Every other model has a front (drawers, doors, backrest,
# headboard, a tap end or an off-centre shelf): "none".
SWEETHOME3D_SYMMETRY: dict[str, str] = {"roundTable": "inf", "squareTable": "4", "stool": "4", "table": "2"}
SWEETHOME3D_ID_PREFIX = "sh3d_"
# The fixed split of the catalogue by model: training may use these 11 models; the benchmark's
# SweetHome3D sets use only the other 16, so they stay unseen. Each class with two or more models has
# models in both halves; the test half keeps the odd one out (the only display, the stool, the round table).
SWEETHOME3D_TRAINING: frozenset[str] = frozenset(
    {
        "bed90x190",
        "filledBookcase",
        "chair2",
        "armchair2",
        "sofa2",
        "squareTable",
        "coffeeTable",
        "glassDoorCabinet",
        "wardrobe",
        "bedsideTable",
        "fittedBath",
    }
)
SWEETHOME3D_HALVES: tuple[str, ...] = ("all", "train", "test")
_CM = 0.01


@dataclass(frozen=True)
class CadEntry:
    """One CAD model of the index.

    Attributes:
        id: unique id, the `cad` field of detections and ground truth.
        path: absolute path of the mesh file or ShapeNet model folder.
        category: one of CATEGORIES.
        sym: Scan2CAD symmetry tag, one of SYMMETRIES.
        unit_scale: (3,) per-axis factors from file units to metres, or None when the file is metric.
    """

    id: str
    path: Path
    category: str
    sym: str
    unit_scale: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        # Frozen dataclass: normalise the path and unit_scale types in place once.
        object.__setattr__(self, "path", Path(os.path.abspath(self.path)))
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown category {self.category!r}; expected one of {', '.join(CATEGORIES)}")
        if self.sym not in SYMMETRIES:
            raise ValueError(f"unknown symmetry {self.sym!r}; expected one of {', '.join(SYMMETRIES)}")
        if self.unit_scale is not None:
            scale = np.asarray(self.unit_scale, dtype=np.float64)
            if scale.shape != (3,) or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
                raise ValueError(f"unit_scale must be 3 positive finite numbers, got {self.unit_scale!r}")
            object.__setattr__(self, "unit_scale", tuple(float(value) for value in scale))


class CadIndex(Mapping[str, CadEntry]):
    """CAD models by id (a read-only mapping id -> CadEntry) with cached meshes and surface samples.

    Meshes are loaded on first use with their `unit_scale` applied (metres, CAD frame, +Y up) and
    kept in an LRU cache of `mesh_cache_size` models; returned meshes are shared, do not modify them.
    Surface samples go through a `SampleCache` on disk and are kept in memory as read-only arrays.
    An index pickles without its caches (for data-loader workers).
    """

    def __init__(
        self,
        entries: Iterable[CadEntry],
        source: str | Path | None = None,
        cache: SampleCache | None = None,
        mesh_cache_size: int = 256,
    ) -> None:
        self.source = Path(source) if source is not None else Path("<CadIndex>")
        self.sample_cache = cache if cache is not None else SampleCache()
        self.mesh_cache_size = mesh_cache_size
        self._entries: dict[str, CadEntry] = {}
        for entry in entries:
            if entry.id in self._entries:
                raise CadIndexError(self.source, f"duplicate CAD id {entry.id!r}")
            self._entries[entry.id] = entry
        self._reset_caches()

    def _reset_caches(self) -> None:
        self._cached_mesh = lru_cache(maxsize=self.mesh_cache_size)(self._load_mesh)
        self._cached_points = lru_cache(maxsize=4 * self.mesh_cache_size)(self._load_points)
        self._cached_nearest = lru_cache(maxsize=self.mesh_cache_size)(self._build_nearest)
        # Bounding boxes are read for every placed object: a trimesh property re-hashes the vertices on
        # each access, so the box is worked out once per model (a few floats; never evicted).
        self._boxes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._ids_by_category: dict[str, list[str]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_cached_mesh"], state["_cached_points"], state["_cached_nearest"]
        del state["_boxes"], state["_ids_by_category"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_caches()

    def __getitem__(self, cad_id: str) -> CadEntry:
        try:
            return self._entries[cad_id]
        except KeyError:
            raise UnknownCadId(self.source, f"unknown CAD id {cad_id!r}") from None

    def __contains__(self, cad_id: object) -> bool:
        return cad_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __repr__(self) -> str:
        return f"CadIndex({len(self)} models from {self.source})"

    def ids_of(self, category: str) -> list[str]:
        """Ids of the models of `category` (a class name or alias), in index order."""
        category = canonical_category(category)
        if category not in self._ids_by_category:
            ids = [cad_id for cad_id, entry in self._entries.items() if entry.category == category]
            self._ids_by_category[category] = ids
        return list(self._ids_by_category[category])

    # Geometry -------------------------------------------------------------------------------------

    def mesh(self, cad_id: str) -> trimesh.Trimesh:
        """The model's mesh in its CAD frame, metres (unit_scale applied); cached and shared."""
        return self._cached_mesh(self[cad_id].id)

    def _load_mesh(self, cad_id: str) -> trimesh.Trimesh:
        entry = self._entries[cad_id]
        return load_mesh(entry.path, entry.unit_scale)

    def points(self, cad_id: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """`n` area-weighted surface points (n, 3) float32 and outward unit normals (n, 3) float32,
        CAD frame, metres; read-only arrays, the same for the same (cad_id, n, seed)."""
        return self._cached_points(self[cad_id].id, n, seed)

    def _load_points(self, cad_id: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        entry = self._entries[cad_id]
        points, normals = self.sample_cache.get(entry.path, n, seed, entry.unit_scale)
        points.flags.writeable = False
        normals.flags.writeable = False
        return points, normals

    def nearest_samples(self, cad_id: str, n: int, seed: int = 0) -> NearestSampleGrid:
        """The lookup of the nearest of `points(cad_id, n, seed)` to any point of the CAD frame
        (`multisparc.cad.nearest`), built on first use and cached."""
        return self._cached_nearest(self[cad_id].id, n, seed)

    def _build_nearest(self, cad_id: str, n: int, seed: int) -> NearestSampleGrid:
        return NearestSampleGrid(self.points(cad_id, n, seed)[0])

    def extent(self, cad_id: str) -> np.ndarray:
        """(3,) bounding-box size along CAD x, y, z in metres."""
        return self._box(cad_id)[0].copy()

    def centre(self, cad_id: str) -> np.ndarray:
        """(3,) bounding-box centre in the CAD frame, metres."""
        return self._box(cad_id)[1].copy()

    def _box(self, cad_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(extent, centre) of the model's bounding box, each (3,) float64."""
        key = self[cad_id].id
        if key not in self._boxes:
            bounds = np.asarray(self.mesh(key).bounds, dtype=np.float64)
            self._boxes[key] = (bounds[1] - bounds[0], bounds.mean(axis=0))
        return self._boxes[key]

    # Reading and writing --------------------------------------------------------------------------

    @classmethod
    def load(cls, cads_json: str | Path, cache: SampleCache | None = None) -> CadIndex:
        """Read a `cads.json` (format in the module docstring); mesh paths are relative to its folder.

        Raises CadFileNotFound (no such file) or CadIndexError naming `cads_json` and the problem:
        malformed JSON (with line and column), an entry that is not an object, a missing key, an
        unknown category or symmetry, a bad unit_scale, a mesh that does not exist.
        """
        cads_json = Path(cads_json)
        if not cads_json.is_file():
            raise CadFileNotFound(cads_json, "no such CAD index file")
        try:
            records = json.loads(cads_json.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise CadIndexError(
                cads_json, f"malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
            ) from None
        except UnicodeDecodeError as error:
            raise CadIndexError(cads_json, f"not UTF-8 text ({error.reason} at byte {error.start})") from None
        if not isinstance(records, dict):
            raise CadIndexError(cads_json, f"expected a JSON object of CAD ids, got {type(records).__name__}")
        folder = cads_json.parent
        entries = []
        for cad_id, record in records.items():
            if not isinstance(record, dict):
                raise CadIndexError(cads_json, f"entry {cad_id!r} must be an object, got {type(record).__name__}")
            missing = [key for key in ("path", "category", "sym") if key not in record]
            if missing:
                raise CadIndexError(cads_json, f"entry {cad_id!r} lacks key(s) {', '.join(missing)}")
            mesh_path = folder / str(record["path"])
            if not mesh_path.exists():
                raise CadIndexError(cads_json, f"entry {cad_id!r}: mesh {mesh_path} does not exist")
            entries.append(
                _entry(cads_json, cad_id, mesh_path, str(record["category"]), record["sym"], record.get("unit_scale"))
            )
        return cls(entries, source=cads_json, cache=cache)

    def save(self, cads_json: str | Path) -> Path:
        """Write the index as `cads.json` with mesh paths relative to its folder; returns the path."""
        cads_json = Path(cads_json)
        cads_json.parent.mkdir(parents=True, exist_ok=True)
        folder = os.path.abspath(cads_json.parent)
        records: dict[str, dict[str, Any]] = {}
        for cad_id, entry in self._entries.items():
            record: dict[str, Any] = {
                "path": Path(os.path.relpath(entry.path, folder)).as_posix(),
                "category": entry.category,
                "sym": entry.sym,
            }
            if entry.unit_scale is not None:
                record["unit_scale"] = list(entry.unit_scale)
            records[cad_id] = record
        cads_json.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
        return cads_json

    @classmethod
    def from_folder(
        cls, folder: str | Path, category_of: CategoryOf | None = None, cache: SampleCache | None = None
    ) -> CadIndex:
        """Index every mesh file under `folder` (recursively; see MESH_SUFFIXES).

        Ids are the path relative to `folder` without suffix, `/` replaced by `_` (a ShapeNet model
        `<synset>/<id>/models/model_normalized.obj` becomes `<synset>_<id>`, its path the model folder).
        The symmetry is the class's default (`category_info(c).default_sym`).

        Args:
            category_of: the class of each model: a callable from the mesh path to a class name (None
                skips the file), or a mapping from id to class name (ids not in it are skipped). By
                default the name of the folder holding the model (the synset folder for ShapeNet), a
                class name, alias or ShapeNet synset.

        Raises CadFileNotFound (no such folder) or CadIndexError naming the folder (no meshes, an id
        twice, a model whose class cannot be told).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise CadFileNotFound(folder, "no such CAD folder")
        entries = []
        for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MESH_SUFFIXES):
            relative = file.relative_to(folder)
            if relative.parts[-2:] == SHAPENET_MODEL.parts:
                model, name = file.parents[1], relative.parents[1]
            else:
                model, name = file, relative.with_suffix("")
            cad_id = name.as_posix().replace("/", "_")
            category = _category_from(folder, model, cad_id, category_of)
            if category is not None:
                entries.append(_entry(folder, cad_id, model, category))
        if not entries:
            raise CadIndexError(folder, f"no mesh files ({', '.join(MESH_SUFFIXES)}) with a category found")
        return cls(entries, source=folder, cache=cache)

    @classmethod
    def from_sweethome3d(cls, folder: str | Path, half: str = "all", cache: SampleCache | None = None) -> CadIndex:
        """Index the SweetHome3D models of `folder` that have a Scan2CAD class, made metric.

        half: "all", "train" (the models of SWEETHOME3D_TRAINING) or "test" (the others).

        Reads `<folder>/DefaultFurnitureCatalog.properties` (`id#N=eTeks#<name>`, `model#N`, and the
        real size `width#N`, `height#N`, `depth#N` in cm). The class comes from SWEETHOME3D_CLASSES
        (models without one are skipped), the symmetry from SWEETHOME3D_SYMMETRY (default "none"),
        and `unit_scale` stretches each axis so that the bounding box becomes width (x) x height (y)
        x depth (z) metres. A model with a `modelRotation#N` (an axis permutation; the baths) stays
        in its file frame, its catalogue sizes permuted to the file's axes. Ids are `sh3d_<name>`.

        Raises CadFileNotFound (no folder, catalogue or model file) or CadIndexError naming the
        catalogue (an unparsable line, a missing size, a rotation that is not an axis permutation).
        """
        if half not in SWEETHOME3D_HALVES:
            raise ValueError(f"half must be one of {', '.join(SWEETHOME3D_HALVES)}, got {half!r}")
        catalogue_path = Path(folder) / SWEETHOME3D_CATALOGUE
        if not catalogue_path.is_file():
            raise CadFileNotFound(catalogue_path, "no SweetHome3D furniture catalogue here")
        catalogue = _read_properties(catalogue_path)
        entries = []
        for key, value in catalogue.items():
            name = value.split("#", 1)[-1]
            if not key.startswith("id#") or name not in SWEETHOME3D_CLASSES:
                continue
            if half != "all" and (name in SWEETHOME3D_TRAINING) != (half == "train"):
                continue
            number = key[len("id#") :]
            model_path = catalogue_path.parent / Path(_required(catalogue, catalogue_path, "model", number)).name
            if not model_path.is_file():
                raise CadFileNotFound(model_path, f"model of catalogue entry {name!r} is missing")
            size = np.array(
                [_size_cm(catalogue, catalogue_path, axis, number) for axis in ("width", "height", "depth")]
            )
            rotation = _axis_permutation(catalogue, catalogue_path, number)
            size_in_file_axes = np.abs(rotation).T @ (size * _CM)
            unit_scale = size_in_file_axes / load_mesh(model_path).extents
            sym = SWEETHOME3D_SYMMETRY.get(name, "none")
            entries.append(
                _entry(
                    catalogue_path, SWEETHOME3D_ID_PREFIX + name, model_path, SWEETHOME3D_CLASSES[name], sym, unit_scale
                )
            )
        return cls(entries, source=catalogue_path, cache=cache)


def _entry(source: Path, cad_id: str, path: Path, category: str, sym: Any = None, unit_scale: Any = None) -> CadEntry:
    """A CadEntry (class aliases resolved, `sym` None -> the class's default symmetry) whose
    problems are reported as a CadIndexError against `source`."""
    try:
        category = canonical_category(category)
        sym = category_info(category).default_sym if sym is None else sym
        return CadEntry(cad_id, path, category, sym, unit_scale)
    except (ValueError, TypeError) as error:
        raise CadIndexError(source, f"entry {cad_id!r}: {error}") from None


def _category_from(folder: Path, model: Path, cad_id: str, category_of: CategoryOf | None) -> str | None:
    """The class name for one model of `from_folder`, or None to skip it."""
    if category_of is None:
        name = model.parent.name
        by_synset = {category_info(c).shapenet_synset: c for c in CATEGORIES}
        if name in by_synset:
            return by_synset[name]
        try:
            return canonical_category(name)
        except ValueError:
            raise CadIndexError(
                folder, f"{model}: its folder {name!r} is no class name or ShapeNet synset; pass category_of"
            ) from None
    if isinstance(category_of, Mapping):
        return category_of.get(cad_id)
    return category_of(model)


def _read_properties(path: Path) -> dict[str, str]:
    """Key-value lines of a Java .properties file (hand-parsed: the standard library has no reader,
    and the catalogue only uses plain `key=value` lines and `#` comments)."""
    properties = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        if "=" not in line:
            raise CadIndexError(path, f"line {number} is not `key=value`: {line[:60]!r}")
        key, value = line.split("=", 1)
        properties[key.strip()] = value.strip()
    return properties


def _required(catalogue: Mapping[str, str], path: Path, field: str, number: str) -> str:
    """The value of `<field>#<number>` in the catalogue at `path`."""
    key = f"{field}#{number}"
    if key not in catalogue:
        raise CadIndexError(path, f"catalogue entry {number} has no {key}")
    return catalogue[key]


def _size_cm(catalogue: Mapping[str, str], path: Path, field: str, number: str) -> float:
    """The positive size `<field>#<number>` (cm) of the catalogue at `path`."""
    text = _required(catalogue, path, field, number)
    try:
        size = float(text)
    except ValueError:
        size = float("nan")
    if not (np.isfinite(size) and size > 0):
        raise CadIndexError(path, f"{field}#{number} is not a positive size in cm: {text!r}")
    return size


def _axis_permutation(catalogue: Mapping[str, str], path: Path, number: str) -> np.ndarray:
    """(3, 3) `modelRotation#N` (row-major, applied to the model's points), identity when absent."""
    text = catalogue.get(f"modelRotation#{number}")
    if text is None:
        return np.eye(3)
    try:
        rotation = np.array([float(value) for value in text.split()]).reshape(3, 3)
    except ValueError:
        raise CadIndexError(path, f"modelRotation#{number} is not 9 numbers: {text!r}") from None
    if not np.allclose(np.abs(rotation) @ np.abs(rotation).T, np.eye(3)) or not np.allclose(np.abs(rotation) % 1, 0):
        raise CadIndexError(path, f"modelRotation#{number} is not an axis permutation: {text!r}")
    return rotation
