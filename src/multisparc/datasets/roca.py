"""ROCA's `per_frame_preds.json` (written by `InstanceEvaluator` in `roca/evaluation/per_frame_evaluation.py`).

The file maps an image key `"<scene>/color/<frame>.jpg"` to that image's predictions, each
`{"score", "bbox" [x1, y1, x2, y2] pixels, "t" [3], "q" [4] (w, x, y, z), "s" [3], "category",
"segmentation" (COCO RLE), "scene_cad_id" [synset, model id], "wild_cad_id" (optional)}`. Poses are in
the image's camera frame (ScanNet / OpenCV axes), boxes and masks in ROCA's 480 x 360 images; "score"
is the 2D detection score. ROCA calls bookshelves "bookcase" and its `CAD_TAXONOMY` names classes by
synset number.

Read leniently, so that other detectors can write the same format: "category" is a class name or
alias, or a ShapeNet synset (number or string); when it is missing the class comes from the CAD's
synset. The CAD is "scene_cad_id", else "wild_cad_id", else "cad": a pair [synset, model id] becomes the
CAD id `<synset>_<model id>` (8-digit synset), a string is taken as the CAD id itself. "t", "q", "s" are
needed only to read the predictions as poses; "score" defaults to 1 for detections.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from multisparc.categories import CATEGORIES, UnknownCategoryError, canonical_category
from multisparc.datasets.bundle import Detection
from multisparc.datasets.checks import check_detection, prefixed, report
from multisparc.datasets.formats import ConversionError, cad_id, category_of_synset, read_json, rotation, vector
from multisparc.datasets.rle import RleError, decode_rle, is_rle

log = logging.getLogger(__name__)

#: Our class names that ROCA spells differently (used when writing its files).
ROCA_CLASS_NAMES: dict[str, str] = {"bookshelf": "bookcase"}
#: The bundle file naming the image key of a scene in a ROCA file (one line of text).
ROCA_KEY_FILE = "roca_key"
_POSE_KEYS = ("t", "q", "s")
# Masks of another resolution are resized when the aspect ratios agree this well (ScanNet's 1296 x 968
# colour images against ROCA's 480 x 360 differ by 0.4 %).
_ASPECT_TOLERANCE = 0.02
#: (height, width) of the images ROCA detects on; an image whose records hold no mask is taken to be this size.
ROCA_IMAGE_SIZE = (360, 480)


@dataclass
class RocaPrediction:
    """One record of a ROCA file, validated.

    index: position in its image's list. category: our class name. cad: the CAD id. bbox: (4,)
    [x1, y1, x2, y2] pixels of ROCA's image. score: the 2D detection score. classification_score: a
    learned score (an extra field of ours), else None. t (3,), q (4,) unit (w, x, y, z), s (3,): the
    camera-frame pose, each None when absent. segmentation: the raw COCO RLE, or None.
    """

    index: int
    category: str
    cad: str
    bbox: np.ndarray
    score: float
    classification_score: float | None = None
    t: np.ndarray | None = None
    q: np.ndarray | None = None
    s: np.ndarray | None = None
    segmentation: dict[str, Any] | None = None


def roca_frame(key: str) -> tuple[str, str]:
    """(scene id, frame name) of a ROCA image key such as "scene0011_00/color/000100.jpg"."""
    parts = key.split("/")
    if len(parts) < 3:
        raise ValueError(f"ROCA image key {key!r} is not `<scene>/color/<frame>.jpg`")
    return parts[-3], Path(parts[-1]).stem


def _cad(path: Path, where: str, record: Mapping[str, Any]) -> str:
    for name in ("scene_cad_id", "wild_cad_id", "cad"):
        value = record.get(name)
        if value is None:
            continue
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, list | tuple) and len(value) == 2:
            return cad_id(str(value[0]), str(value[1]))
        raise ConversionError(path, f"{where}: {name} must be [synset, model id] or a CAD id string, got {value!r}")
    raise ConversionError(path, f"{where}: needs scene_cad_id (or wild_cad_id, or cad): [synset, model id] or a CAD id")


def _category(path: Path, where: str, record: Mapping[str, Any], cad: str) -> str:
    value = record.get("category")
    if value is None:
        synset = cad.partition("_")[0]
        name = category_of_synset(synset) if synset.isdigit() else None
        if name not in CATEGORIES:
            raise ConversionError(path, f"{where}: missing key category, and the CAD id {cad!r} names no class synset")
        return name
    text = str(value).strip()
    if text.isdigit():  # a synset, as ROCA's CAD_TAXONOMY keys
        name = category_of_synset(text)
        if name not in CATEGORIES:
            raise ConversionError(path, f"{where}: synset {text} is none of the classes {', '.join(CATEGORIES)}")
        return name
    try:
        return canonical_category(text)
    except UnknownCategoryError as err:
        raise ConversionError(path, f"{where}: {err}") from None


def _pose(path: Path, where: str, record: Mapping[str, Any]) -> tuple[np.ndarray | None, ...]:
    if not all(key in record for key in _POSE_KEYS):
        return None, None, None
    q = vector(path, f"{where} q", record["q"], 4)
    rotation(path, where, q)  # validates the norm
    s = vector(path, f"{where} s", record["s"], 3)
    if np.any(s <= 0):
        raise ConversionError(path, f"{where}: scales must be positive, got {s.tolist()}")
    return vector(path, f"{where} t", record["t"], 3), q / np.linalg.norm(q), s


def parse_roca_record(path: Path, where: str, index: int, record: Any, require_pose: bool) -> RocaPrediction:
    """One validated record of a ROCA file; `where` names it in errors (module docstring for the rules)."""
    if not isinstance(record, dict):
        raise ConversionError(path, f"{where}: expected an object")
    required = ("score", "bbox", *_POSE_KEYS) if require_pose else ("bbox",)
    missing = [name for name in required if name not in record]
    if missing:
        raise ConversionError(path, f"{where}: missing key(s) {', '.join(missing)}")
    cad = _cad(path, where, record)
    score = float(vector(path, f"{where} score", [record.get("score", 1.0)], 1)[0])
    extra = record.get("classification_score")  # a learned score, written by our own converter
    learned = None if extra is None else float(vector(path, f"{where} classification_score", [extra], 1)[0])
    segmentation = record.get("segmentation")
    if segmentation is not None:
        size = segmentation.get("size") if is_rle(segmentation) else None
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise ConversionError(path, f"{where}: segmentation must be a COCO RLE {{size: [height, width], counts}}")
    t, q, s = _pose(path, where, record)
    return RocaPrediction(
        index=index,
        category=_category(path, where, record, cad),
        cad=cad,
        bbox=vector(path, f"{where} bbox", record["bbox"], 4),
        score=score,
        classification_score=learned,
        t=t,
        q=q,
        s=s,
        segmentation=segmentation,
    )


def read_roca_file(path: Path | str, require_pose: bool = False) -> dict[str, list[RocaPrediction]]:
    """Every image's validated records of a ROCA file, by image key; ConversionError naming the file and
    the record for anything malformed (with `require_pose`, also for a record without t, q, s or score)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise ConversionError(path, "expected a JSON object keyed by image path")
    frames: dict[str, list[RocaPrediction]] = {}
    for key, records in data.items():
        if not isinstance(records, list):
            raise ConversionError(path, f"{key}: expected a list of predictions")
        frames[str(key)] = [
            parse_roca_record(path, f"{key} prediction #{index}", index, record, require_pose)
            for index, record in enumerate(records)
        ]
    return frames


def find_image_key(path: Path | str, keys: Sequence[str], scene_dir: Path, explicit: str | None = None) -> str:
    """The key of a ROCA file (at `path`, with `keys`) that holds the image of the bundle `scene_dir`.

    In order: `explicit`; the text of `<scene_dir>/roca_key`; the key equal to the bundle's name or
    whose `<scene>_<frame>` is (bundle `scene0011_00_000100` for "scene0011_00/color/000100.jpg").
    """
    path, known = Path(path), set(keys)
    key_file = scene_dir / ROCA_KEY_FILE
    if explicit is not None:
        key, source = explicit, "--image-key"
    elif key_file.is_file():
        key, source = key_file.read_text().strip(), str(key_file)
    else:
        matches = [k for k in keys if k == scene_dir.name or _frame_name(k) == scene_dir.name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ConversionError(path, f"several image keys match the bundle {scene_dir}: {', '.join(matches[:4])}")
        example = f" (keys look like {next(iter(keys))!r})" if keys else " (it holds no image)"
        raise ConversionError(
            path,
            f"no image key matches the bundle name {scene_dir.name!r}{example}; name the bundle "
            f"<scene>_<frame>, write the key into {key_file} or pass --image-key",
        )
    if key not in known:
        raise ConversionError(path, f"has no image key {key!r} (from {source})")
    return key


def _frame_name(key: str) -> str | None:
    try:
        scene, frame = roca_frame(key)
    except ValueError:
        return None
    return f"{scene}_{frame}"


def _factors(path: Path, key: str, records: Sequence[RocaPrediction], height: int, width: int) -> np.ndarray:
    """(2,) x and y factors from the image ROCA saw to the bundle's image: its size is told by the masks,
    or, for an image whose records hold none, ROCA's own ROCA_IMAGE_SIZE."""
    sizes = {tuple(record.segmentation["size"]) for record in records if record.segmentation is not None}
    if len(sizes) > 1:
        raise ConversionError(path, f"{key}: the masks of one image have different sizes {sorted(sizes)}")
    rle_height, rle_width = next(iter(sizes)) if sizes else ROCA_IMAGE_SIZE
    if (rle_height, rle_width) == (height, width):
        return np.ones(2)
    if abs((rle_width / rle_height) / (width / height) - 1.0) > _ASPECT_TOLERANCE:
        told = "its masks are" if sizes else "it has no masks, so its boxes are taken to be in ROCA's"
        raise ConversionError(
            path,
            f"{key}: {told} {rle_width} x {rle_height}, the bundle's image {width} x {height}: "
            "the aspect ratios differ, so the detections belong to another image",
        )
    log.info("%s %s: boxes and masks scaled from %d x %d to %d x %d", path, key, rle_width, rle_height, width, height)
    return np.array([width / rle_width, height / rle_height])


def _mask(path: Path, where: str, rle: dict[str, Any], height: int, width: int) -> np.ndarray:
    """The (H, W) bool mask of an RLE in the bundle's image (resized by nearest neighbour when needed)."""
    try:
        mask = decode_rle(rle)
    except RleError as err:
        raise ConversionError(path, f"{where} segmentation: {err}") from None
    if mask.shape == (height, width):
        return mask
    image = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(image) > 0


def roca_detections(
    path: Path | str, key: str, records: Sequence[RocaPrediction], height: int, width: int
) -> list[Detection]:
    """The `Detection`s of one image's ROCA records, for a bundle image of `width` x `height` pixels.

    Ids are the records' positions in the list, scores their detection scores. Masks are decoded
    from the COCO RLEs. The masks' size tells the image ROCA saw (480 x 360): when it differs from the
    bundle's image with the same aspect ratio, every box and mask of the image is scaled to it (a pixel
    centre u maps to (u + 0.5) * f - 0.5, masks by nearest neighbour). An image without any mask has
    its boxes in ROCA's 480 x 360 image, scaled the same way (another aspect ratio is an error). Boxes
    and masks are checked as those of detections.json
    (`checks.check_detection`).
    """
    path = Path(path)
    factors = _factors(path, key, records, height, width)
    detections = []
    for record in records:
        where = f"{key} prediction #{record.index}"
        mask = None if record.segmentation is None else _mask(path, where, record.segmentation, height, width)
        bbox = record.bbox.copy() if np.all(factors == 1.0) else (record.bbox + 0.5) * np.tile(factors, 2) - 0.5
        if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
            raise ConversionError(path, f"{where}: empty box {record.bbox.tolist()} (need x2 > x1, y2 > y1)")
        report(path, prefixed(where, check_detection(bbox, mask, width, height)), ConversionError)
        if mask is not None and not mask.any():
            mask = None  # an empty mask: the box stands for it
        detections.append(Detection(record.index, record.category, bbox, record.cad, record.score, mask))
    return detections
