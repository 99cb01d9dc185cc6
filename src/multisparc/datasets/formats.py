"""What the readers of the field's files (ROCA, Scan2CAD) share: their error, ShapeNet CAD ids, and
validation of the numbers they hold.

CAD ids are `<synset>_<model id>` (8-digit synset with its leading zeros), as `CadIndex.from_folder`
names ShapeNet models. A synset that is none of the 9 classes stays the category of its objects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multisparc.categories import CATEGORIES, category_info
from multisparc.geometry import quat_to_matrix

_SYNSET_CLASSES = {category_info(name).shapenet_synset: name for name in CATEGORIES}
QUATERNION_TOLERANCE = 1e-3


class ConversionError(ValueError):
    """A file of the field's formats that is missing or malformed; the message names the file."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def category_of_synset(synset: str | int) -> str:
    """Our class name for a ShapeNet synset (leading zeros may be missing), or the 8-digit synset itself."""
    synset = str(synset).strip().zfill(8)
    return _SYNSET_CLASSES.get(synset, synset)


def cad_id(synset: str | int, model_id: str) -> str:
    """The CAD id `<synset>_<model id>` of a ShapeNet model."""
    return f"{str(synset).strip().zfill(8)}_{model_id}"


def split_cad_id(cad: str, where: Path | str) -> tuple[str, str]:
    """(synset, model id) of a CAD id `<synset>_<model id>`; ConversionError naming `where` otherwise."""
    synset, _, model = cad.partition("_")
    if not synset.isdigit() or not model:
        raise ConversionError(where, f"CAD id {cad!r} is not `<synset>_<model id>`, which this format needs")
    return synset.zfill(8), model


def read_json(path: Path) -> Any:
    """The parsed JSON file; ConversionError when it is missing or malformed."""
    if not path.is_file():
        raise ConversionError(path, "file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConversionError(path, f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None


def vector(path: Path, where: str, value: Any, length: int) -> np.ndarray:
    """`value` as (length,) finite float64; ConversionError naming the file and `where` otherwise."""
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ConversionError(path, f"{where}: expected {length} numbers, got {value!r}") from None
    if array.shape != (length,) or not np.all(np.isfinite(array)):
        raise ConversionError(path, f"{where}: expected {length} finite numbers, got {value!r}")
    return array


def rotation(path: Path, where: str, q: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of a unit quaternion (w, x, y, z); ConversionError when it is not unit length."""
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > QUATERNION_TOLERANCE:
        raise ConversionError(path, f"{where}: q must be a unit quaternion (w, x, y, z), its norm is {norm:.4f}")
    return quat_to_matrix(torch.as_tensor(q, dtype=torch.float64)).numpy()


def positive(path: Path, where: str, s: np.ndarray) -> np.ndarray:
    """`s` unchanged when every entry is positive; ConversionError otherwise."""
    if np.any(s <= 0):
        raise ConversionError(path, f"{where}: scales must be positive, got {s.tolist()}")
    return s
