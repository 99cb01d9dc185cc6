"""The scene bundle: one directory per image, the contract between data, pipeline and evaluation.

Layout (docs/CONVENTIONS.md)::

    <scene>/image.png          RGB uint8, H x W
    <scene>/camera.json        {"K", "width", "height", "cam_to_world" (optional), "up" (optional)}
    <scene>/depth.npy          float32 H x W z-depth in metres, 0 = unknown  (or depth.png: uint16 mm)
    <scene>/normals.npy        float32 H x W x 3, camera frame, facing the camera
    <scene>/detections.json    [{"id", "category", "bbox", "score", "cad", "mask" (optional: PNG path or COCO RLE)}]
                               ("cad" may be absent or null when the CAD is to be chosen: `inference.cad_choice`)
    <scene>/gt.json            [{"id", "category", "cad", "t", "q", "s", "sym"}]  (optional)

Readers validate everything and raise `BundleError` naming the file and the problem; inputs that are
usable but degraded are logged as warnings (`multisparc.datasets.checks`, listed in docs/INPUTS.md).
Unknown depth (0, NaN or negative) is stored as 0; unknown normals as the zero vector.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from multisparc.categories import UnknownCategoryError, canonical_category
from multisparc.datasets.checks import (
    check_depth,
    check_detection,
    check_intrinsics,
    check_normals,
    check_rigid,
    depth_dtype_problem,
    normals_dtype_problem,
    prefixed,
    report,
)
from multisparc.datasets.rle import RleError, decode_rle, is_rle

SYMMETRIES = ("none", "2", "4", "inf")


class BundleError(ValueError):
    """A scene bundle file that is missing or malformed; the message names the file."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass
class Camera:
    """Pinhole camera. K (3, 3) pixels; cam_to_world (4, 4) metres; up (3,) unit, camera frame."""

    K: np.ndarray
    width: int
    height: int
    cam_to_world: np.ndarray | None = None
    up: np.ndarray | None = None


@dataclass
class Observation:
    """What the pipeline sees of one image.

    image (H, W, 3) uint8; depth (H, W) float32 z-depth metres, 0 = unknown; normals (H, W, 3) float32
    camera frame facing the camera, zero = unknown.
    """

    image: np.ndarray
    camera: Camera
    depth: np.ndarray | None = None
    normals: np.ndarray | None = None


@dataclass
class Detection:
    """One 2D detection with its retrieved CAD. bbox [x1, y1, x2, y2] pixels; mask (H, W) bool or None;
    cad None: a category only, the CAD to be chosen from the library (`inference.cad_choice`)."""

    id: int
    category: str
    bbox: np.ndarray
    cad: str | None
    score: float = 1.0
    mask: np.ndarray | None = None


@dataclass
class ObjectPose:
    """A CAD pose in the camera frame: X_cam = t + R(q) @ (s * X_cad); q = (w, x, y, z)."""

    id: int
    category: str
    cad: str
    t: np.ndarray
    q: np.ndarray
    s: np.ndarray
    sym: str = "none"
    score: float | None = None
    detection_score: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class SceneBundle:
    """A scene bundle in memory; `gt` is None when the scene has no ground truth."""

    name: str
    observation: Observation
    detections: list[Detection]
    gt: list[ObjectPose] | None = None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise BundleError(path, "file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BundleError(path, f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err


def _vector(path: Path, where: str, value: Any, length: int) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BundleError(path, f"{where}: expected {length} numbers, got {value!r}") from err
    if array.shape != (length,) or not np.all(np.isfinite(array)):
        raise BundleError(path, f"{where}: expected {length} finite numbers, got {value!r}")
    return array


def _matrix(path: Path, name: str, value: Any, size: int) -> np.ndarray:
    """`value` as a finite (size, size) float64 matrix; BundleError naming `name` otherwise."""
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = np.empty(0)
    if matrix.shape != (size, size) or not np.all(np.isfinite(matrix)):
        raise BundleError(path, f"{name} must be a {size}x{size} matrix of finite numbers, got {value!r}")
    return matrix


def _integer(path: Path, where: str, value: Any) -> int:
    """`value` as an int when it is a whole number (not a bool, string or null); BundleError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise BundleError(path, f"{where} must be a whole number, got {value!r}")
    return int(value)


def _number(path: Path, where: str, value: Any) -> float:
    """`value` as a finite float (not a bool, string or null); BundleError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise BundleError(path, f"{where} must be a finite number, got {value!r}")
    return float(value)


def _optional_number(path: Path, where: str, value: Any) -> float | None:
    """None for null, else `value` as a finite float (`_number`)."""
    return None if value is None else _number(path, where, value)


def _load_npy(path: Path) -> np.ndarray:
    """The array of a .npy file (no pickled objects); BundleError for anything else (empty, truncated, .npz)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise BundleError(path, f"not a readable .npy array ({err or type(err).__name__})") from None
    if not isinstance(array, np.ndarray):
        raise BundleError(path, "not a .npy array (an .npz archive?)")
    return array


def _require(path: Path, where: str, record: dict, keys: tuple[str, ...]) -> None:
    if not isinstance(record, dict):
        raise BundleError(path, f"{where}: expected an object, got {type(record).__name__}")
    missing = [key for key in keys if key not in record]
    if missing:
        raise BundleError(path, f"{where}: missing key(s) {', '.join(missing)}")


def _category(path: Path, where: str, name: Any) -> str:
    try:
        return canonical_category(str(name))
    except UnknownCategoryError as err:
        raise BundleError(path, f"{where}: {err}") from err


def read_camera(path: Path) -> Camera:
    """Read and validate `camera.json`."""
    data = _read_json(path)
    _require(path, "camera", data, ("K", "width", "height"))
    width, height = _integer(path, "width", data["width"]), _integer(path, "height", data["height"])
    if width <= 0 or height <= 0:
        raise BundleError(path, f"width and height must be positive, got {width} x {height}")
    K = _matrix(path, "K", data["K"], 3)
    report(path, check_intrinsics(K, width, height), BundleError)
    cam_to_world = None
    if data.get("cam_to_world") is not None:
        cam_to_world = _matrix(path, "cam_to_world", data["cam_to_world"], 4)
        report(path, check_rigid(cam_to_world), BundleError)
    up = None
    if data.get("up") is not None:
        up = _vector(path, "up", data["up"], 3)
        norm = np.linalg.norm(up)
        if norm < 1e-9:
            raise BundleError(path, "up must be a non-zero vector")
        up = up / norm
    return Camera(K=K, width=width, height=height, cam_to_world=cam_to_world, up=up)


def read_image_file(path: Path, mode: str | None) -> Image.Image:
    """The decoded image of a file, converted to `mode` (None: as stored); BundleError when it is missing or
    no image."""
    if not path.is_file():
        raise BundleError(path, "file not found")
    try:
        with Image.open(path) as image:
            return image.copy() if mode is None else image.convert(mode)
    except (OSError, ValueError) as err:
        raise BundleError(path, f"not a readable image ({err})") from None


def read_image(path: Path) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB."""
    return np.asarray(read_image_file(path, "RGB"))


def read_depth(scene_dir: Path, height: int, width: int) -> np.ndarray | None:
    """Read `depth.npy` (float metres) or `depth.png` (uint16 millimetres), checked for plausibility
    (`checks.check_depth`); NaN and negative become 0."""
    npy, png = scene_dir / "depth.npy", scene_dir / "depth.png"
    if npy.is_file():
        path = npy
        raw = _load_npy(npy)
        problem = depth_dtype_problem(raw.dtype)
        if problem is not None:
            raise BundleError(npy, problem.problem)
        depth = raw.astype(np.float32)
    elif png.is_file():
        path = png
        raw = np.asarray(read_image_file(png, mode=None))
        if raw.dtype.kind not in "ui" or raw.dtype.itemsize < 2:
            raise BundleError(png, f"depth PNG must be 16-bit millimetres, got {raw.dtype} pixels")
        depth = raw.astype(np.float32) / 1000.0
    else:
        return None
    if depth.shape != (height, width):
        raise BundleError(path, f"depth has shape {depth.shape}, expected ({height}, {width}) from camera.json")
    report(path, check_depth(depth), BundleError)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth


def read_normals(path: Path, height: int, width: int, K: np.ndarray | None = None) -> np.ndarray | None:
    """Read `normals.npy`, checked (`checks.check_normals`; facing the camera when K is given); renormalise,
    zero where unknown (NaN or zero length)."""
    if not path.is_file():
        return None
    raw = _load_npy(path)
    problem = normals_dtype_problem(raw.dtype)
    if problem is not None:
        raise BundleError(path, problem.problem)
    normals = raw.astype(np.float32)
    if normals.shape != (height, width, 3):
        raise BundleError(path, f"normals have shape {normals.shape}, expected ({height}, {width}, 3)")
    report(path, check_normals(normals, K), BundleError)
    normals[~np.isfinite(normals)] = 0.0
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    return np.where(norm > 1e-6, normals / np.maximum(norm, 1e-6), 0.0).astype(np.float32)


def read_mask(source: Path | Mapping[str, Any], height: int, width: int, named_in: Path | None = None) -> np.ndarray:
    """A binary mask as (H, W) bool: a PNG file (non-zero = inside), or a COCO RLE
    `{"size": [H, W], "counts": str | list}` (`multisparc.datasets.rle`) given inside the JSON file `named_in`."""
    if isinstance(source, Mapping):
        where = named_in if named_in is not None else Path("mask")
        try:
            mask = decode_rle(source)
        except RleError as err:
            raise BundleError(where, f"mask: {err}") from None
        if mask.shape != (height, width):
            raise BundleError(where, f"mask: RLE size is {list(mask.shape)}, expected [{height}, {width}]")
        return mask
    path = Path(source)
    if not path.is_file():
        raise BundleError(path, "mask file not found")
    mask = np.asarray(read_image_file(path, "L")) > 0
    if mask.shape != (height, width):
        raise BundleError(path, f"mask has shape {mask.shape}, expected ({height}, {width})")
    return mask


def read_detections(path: Path, height: int, width: int, require_cad: bool = True) -> list[Detection]:
    """Read and validate `detections.json`; a "mask" is a PNG path relative to the scene directory or a COCO
    RLE object (compressed string or list counts, column-major as COCO).

    require_cad=False reads a detection without "cad" (or with null) as a category only (`Detection.cad`
    None); with True such a detection is an error that says how to have its CAD chosen."""
    records = _read_json(path)
    if not isinstance(records, list):
        raise BundleError(path, "expected a JSON list of detections")
    detections, seen = [], set()
    for index, record in enumerate(records):
        where = f"detection #{index}"
        _require(path, where, record, ("id", "category", "bbox"))
        det_id = _integer(path, f"{where} id", record["id"])
        if det_id in seen:
            raise BundleError(path, f"{where}: duplicate id {det_id}")
        seen.add(det_id)
        where = f"{where} (id {det_id})"
        bbox = _vector(path, f"{where} bbox", record["bbox"], 4)
        if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
            raise BundleError(path, f"{where}: empty box {bbox.tolist()} (need x2 > x1, y2 > y1)")
        cad = record.get("cad")
        if cad is None and require_cad:
            raise BundleError(
                path,
                f"{where}: no cad; give it the id of a CAD of cads.json, or align with `multisparc align "
                "--choose-cad K` to choose one of its category's CADs",
            )
        if cad is not None and (not isinstance(cad, str) or not cad.strip()):
            raise BundleError(path, f"{where}: cad must be a CAD id of cads.json, got {cad!r}")
        mask = None
        value = record.get("mask")
        if is_rle(value):
            try:
                mask = read_mask(value, height, width, named_in=path)
            except BundleError as err:
                raise BundleError(path, f"{where} {err.problem}") from None
        elif isinstance(value, dict):
            raise BundleError(path, f"{where}: an RLE mask needs size [height, width] and counts")
        elif value:
            mask = read_mask(path.parent / str(value), height, width)
        report(path, prefixed(where, check_detection(bbox, mask, width, height)), BundleError)
        detections.append(
            Detection(
                id=det_id,
                category=_category(path, where, record["category"]),
                bbox=bbox,
                cad=cad,
                score=_number(path, f"{where} score", record.get("score", 1.0)),
                mask=mask if mask is not None and mask.any() else None,  # an empty mask: the box stands for it
            )
        )
    return detections


def read_poses(path: Path) -> list[ObjectPose]:
    """Read `gt.json` or `predictions.json` (camera-frame poses); ids must be unique within the file (an id
    twice would count one object twice in the evaluation)."""
    records = _read_json(path)
    if not isinstance(records, list):
        raise BundleError(path, "expected a JSON list of objects")
    poses, seen = [], set()
    for index, record in enumerate(records):
        where = f"object #{index}"
        _require(path, where, record, ("id", "category", "cad", "t", "q", "s"))
        pose_id = _integer(path, f"{where} id", record["id"])
        if pose_id in seen:
            raise BundleError(path, f"{where}: duplicate id {pose_id} (each object once per file)")
        seen.add(pose_id)
        q = _vector(path, f"{where} q", record["q"], 4)
        norm = np.linalg.norm(q)
        if abs(norm - 1.0) > 1e-3:
            raise BundleError(path, f"{where}: q must be a unit quaternion (w, x, y, z), its norm is {norm:.4f}")
        s = _vector(path, f"{where} s", record["s"], 3)
        if np.any(s <= 0):
            raise BundleError(path, f"{where}: scales must be positive, got {s.tolist()}")
        sym = str(record.get("sym", "none"))
        if sym not in SYMMETRIES:
            raise BundleError(path, f"{where}: unknown symmetry {sym!r}; expected one of {SYMMETRIES}")
        known = {"id", "category", "cad", "t", "q", "s", "sym", "score", "detection_score"}
        poses.append(
            ObjectPose(
                id=pose_id,
                category=_category(path, where, record["category"]),
                cad=str(record["cad"]),
                t=_vector(path, f"{where} t", record["t"], 3),
                q=q,
                s=s,
                sym=sym,
                score=_optional_number(path, f"{where} score", record.get("score")),
                detection_score=_optional_number(path, f"{where} detection_score", record.get("detection_score")),
                extras={key: value for key, value in record.items() if key not in known},
            )
        )
    return poses


def read_bundle(scene_dir: Path | str, with_detections: bool = True, require_cad: bool = True) -> SceneBundle:
    """Read a scene bundle directory; every problem raises BundleError naming the file.

    `with_detections=False` neither reads nor needs `detections.json` (detections come from elsewhere);
    the bundle's detections are then empty. `require_cad=False` accepts detections without a CAD
    (`read_detections`)."""
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise BundleError(scene_dir, "scene bundle directory not found")
    camera = read_camera(scene_dir / "camera.json")
    image = read_image(scene_dir / "image.png")
    if image.shape[:2] != (camera.height, camera.width):
        raise BundleError(
            scene_dir / "image.png",
            f"image is {image.shape[1]} x {image.shape[0]} but camera.json says {camera.width} x {camera.height}",
        )
    observation = Observation(
        image=image,
        camera=camera,
        depth=read_depth(scene_dir, camera.height, camera.width),
        normals=read_normals(scene_dir / "normals.npy", camera.height, camera.width, camera.K),
    )
    gt_path = scene_dir / "gt.json"
    return SceneBundle(
        name=scene_dir.name,
        observation=observation,
        detections=read_detections(scene_dir / "detections.json", camera.height, camera.width, require_cad)
        if with_detections
        else [],
        gt=read_poses(gt_path) if gt_path.is_file() else None,
    )


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically with stable formatting; BundleError, and nothing written, for NaN or infinity
    (which JSON cannot hold: json.dumps would write the non-standard `NaN`)."""
    try:
        text = json.dumps(data, indent=1, allow_nan=False)
    except ValueError:
        raise BundleError(path, "not written: the data holds NaN or infinite numbers") from None
    atomic_write_bytes(path, (text + "\n").encode())


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def pose_record(pose: ObjectPose) -> dict[str, Any]:
    """The JSON record of a pose (gt.json / predictions.json)."""
    record: dict[str, Any] = {
        "id": int(pose.id),
        "category": pose.category,
        "cad": pose.cad,
        "t": [float(v) for v in pose.t],
        "q": [float(v) for v in pose.q],
        "s": [float(v) for v in pose.s],
        "sym": pose.sym,
    }
    if pose.score is not None:
        record["score"] = float(pose.score)
    if pose.detection_score is not None:
        record["detection_score"] = float(pose.detection_score)
    record.update(pose.extras)
    return record


def write_poses(path: Path, poses: list[ObjectPose]) -> None:
    """Write `gt.json` or `predictions.json`."""
    write_json(path, [pose_record(pose) for pose in poses])


def write_bundle(scene_dir: Path | str, bundle: SceneBundle) -> Path:
    """Write a scene bundle directory (masks as masks/<id>.png); returns the directory."""
    scene_dir = Path(scene_dir)
    scene_dir.mkdir(parents=True, exist_ok=True)
    obs = bundle.observation
    camera: dict[str, Any] = {"K": obs.camera.K.tolist(), "width": obs.camera.width, "height": obs.camera.height}
    if obs.camera.cam_to_world is not None:
        camera["cam_to_world"] = np.asarray(obs.camera.cam_to_world).tolist()
    if obs.camera.up is not None:
        camera["up"] = np.asarray(obs.camera.up).tolist()
    write_json(scene_dir / "camera.json", camera)
    Image.fromarray(np.asarray(obs.image, dtype=np.uint8)).save(scene_dir / "image.png")
    if obs.depth is not None:
        atomic_write_bytes(scene_dir / "depth.npy", _npy_bytes(np.asarray(obs.depth, dtype=np.float32)))
    if obs.normals is not None:
        atomic_write_bytes(scene_dir / "normals.npy", _npy_bytes(np.asarray(obs.normals, dtype=np.float32)))
    records = []
    for det in bundle.detections:
        record: dict[str, Any] = {
            "id": int(det.id),
            "category": det.category,
            "bbox": [float(v) for v in det.bbox],
            "score": float(det.score),
        }
        if det.cad is not None:
            record["cad"] = det.cad
        if det.mask is not None:
            mask_rel = f"masks/{det.id}.png"
            (scene_dir / "masks").mkdir(exist_ok=True)
            Image.fromarray(np.asarray(det.mask, dtype=np.uint8) * 255).save(scene_dir / mask_rel)
            record["mask"] = mask_rel
        records.append(record)
    write_json(scene_dir / "detections.json", records)
    if bundle.gt is not None:
        write_poses(scene_dir / "gt.json", bundle.gt)
    return scene_dir
