"""One RGB-D frame (colour image, depth image, intrinsics, boxes) made into a scene bundle (`multisparc bundle`).

Inputs, each checked at this boundary (`multisparc.datasets.checks`); every problem is a `BundleError` naming
the file (or the option) and what is wrong, in one line:

- depth: a 16-bit PNG, a .npy or an .exr, times `depth_scale` metres per stored unit (default 0.001 for a
  PNG, as ScanNet, RealSense and Kinect write millimetres; 1.0 for float .npy and .exr, which hold metres;
  an integer .npy must say its unit). A frame whose median depth lies outside what an RGB-D camera sees
  (0.1 to 20 m) has the wrong unit and is refused.
- intrinsics: a 3 x 3 or 4 x 4 text matrix (ScanNet's intrinsic_color.txt), a JSON with "K" (camera.json,
  whose "up" and "cam_to_world" are kept) or with "fx", "fy", "cx", "cy"; or a horizontal field of view.
- detections: a JSON list of `{"bbox": [x1, y1, x2, y2], "category", "cad", "score" (optional), "id"
  (optional), "mask" (optional: a PNG path relative to the JSON file, or a COCO RLE)}` in the colour
  image's pixels. A "cad" must be a CAD id of the CAD index, of the detection's class; a detection without one
  gives its category only (its class must have a model in the index), for `multisparc align --choose-cad K`.

Registration: the depth must be registered to the colour camera (the same viewpoint and orientation, as
ScanNet's frames and RealSense's or Kinect's aligned depth are); only the intrinsics may differ. The bundle
keeps the colour camera's view, at the depth's resolution by default (`default_size`): the colour image is
resized (K scaled) and the depth and the normals are looked up at the nearest depth pixel of every bundle
pixel, so depths are never averaged across an edge, and pixels that the depth does not see stay unknown
(0). Normals come from the depth on its own pixel grid (`multisparc.datasets.normals`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from multisparc.datasets.bundle import (
    BundleError,
    Camera,
    Detection,
    Observation,
    SceneBundle,
    _category,
    _integer,
    _load_npy,
    _number,
    _read_json,
    _require,
    _vector,
    read_bundle,
    read_camera,
    read_image,
    read_image_file,
    read_mask,
    write_bundle,
)
from multisparc.datasets.checks import (
    DEPTH_FAR_MEDIAN_M,
    DEPTH_MIN_VALID,
    DEPTH_NEAR_MEDIAN_M,
    MAX_FIELD_OF_VIEW_DEG,
    Finding,
    check_depth,
    check_detection,
    check_intrinsics,
    error,
    prefixed,
    report,
)
from multisparc.datasets.normals import DEFAULT_RADIUS, normals_from_depth, pixel_rays
from multisparc.datasets.rle import is_rle

if TYPE_CHECKING:
    from multisparc.cad import CadIndex

log = logging.getLogger(__name__)

#: Metres per stored unit when none is given: millimetres in 16-bit PNGs, metres in float files.
PNG_DEPTH_SCALE = 0.001
FLOAT_DEPTH_SCALE = 1.0
#: Colour and depth whose aspect ratios differ by more than this do not share a field of view (ScanNet's
#: 1296 x 968 colour and 640 x 480 depth differ by 0.4 %), as in `multisparc.datasets.roca`.
ASPECT_TOLERANCE = 0.02
#: EXR channel names that hold depth, in order of preference (last part of a layered name: "View.Depth.Z").
EXR_DEPTH_CHANNELS = ("z", "depth", "d", "y")
EXIF_ORIENTATION = 0x0112


# Depth ---------------------------------------------------------------------------------------------------


def read_depth_image(path: Path, depth_scale: float | None = None) -> np.ndarray:
    """The depth (H, W) float32 z-depth in metres, 0 = unknown, of a 16-bit PNG, .npy or .exr file, whose
    stored values times `depth_scale` (None: the file type's default, module docstring) are metres; refused
    when the values are implausible in that unit."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(path, "file not found")
    suffix = path.suffix.lower()
    if suffix == ".png":
        raw = np.asarray(read_image_file(path, mode=None))
        if raw.dtype.kind not in "ui" or raw.dtype.itemsize < 2:
            raise BundleError(
                path, f"a depth PNG must hold 16-bit integers (millimetres), got {raw.dtype} pixels: not a depth map?"
            )
        default = PNG_DEPTH_SCALE
    elif suffix == ".npy":
        raw = _load_npy(path)
        if raw.dtype.kind in "ui" and depth_scale is None:
            raise BundleError(
                path, f"holds integers ({raw.dtype}): give their unit with --depth-scale (0.001 for millimetres)"
            )
        if raw.dtype.kind not in "uif":
            raise BundleError(path, f"holds {raw.dtype} values, not depths")
        default = FLOAT_DEPTH_SCALE
    elif suffix == ".exr":
        raw, default = read_exr_depth(path), FLOAT_DEPTH_SCALE
    else:
        raise BundleError(
            path,
            f"depth files are 16-bit PNGs, .npy or .exr, not {suffix or 'files without a suffix'}"
            + (" (JPEG is lossy and 8-bit: no depth survives it)" if suffix in (".jpg", ".jpeg") else ""),
        )
    if raw.ndim == 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim != 2 or min(raw.shape) == 0:
        raise BundleError(path, f"depth has shape {raw.shape}, expected one channel (H, W)")
    scale = default if depth_scale is None else depth_scale
    depth = (raw.astype(np.float64) * scale).astype(np.float32)
    report(path, sensor_depth_findings(depth, raw, scale), BundleError)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth


def read_exr_depth(path: Path) -> np.ndarray:
    """The depth channel (H, W) of an OpenEXR file: its only channel, else the first named Z, depth, D or Y
    (EXR_DEPTH_CHANNELS), else R of an R = G = B image. Needs the optional OpenEXR package."""
    try:
        import OpenEXR
    except ImportError:
        raise BundleError(
            path,
            "reading .exr needs the OpenEXR package (pip install 'multisparc[exr]'); or save the depth as a "
            "float32 .npy in metres or a 16-bit PNG in millimetres",
        ) from None
    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            channels = {name: np.asarray(channel.pixels) for name, channel in exr.channels().items()}
    except (RuntimeError, OSError, ValueError) as err:
        raise BundleError(path, f"not a readable EXR file ({err})") from None
    if len(channels) == 1:
        return next(iter(channels.values()))
    by_name = {name.rsplit(".", 1)[-1].lower(): values for name, values in channels.items()}
    for name in EXR_DEPTH_CHANNELS:
        if name in by_name:
            return by_name[name]
    if (
        all(key in by_name for key in "rgb")
        and np.array_equal(by_name["r"], by_name["g"])
        and np.array_equal(by_name["r"], by_name["b"])
    ):
        return by_name["r"]
    raise BundleError(
        path,
        f"holds channels {', '.join(sorted(channels))}, none of them depth (Z, depth, D or Y): save the depth alone",
    )


def sensor_depth_findings(depth: np.ndarray, raw: np.ndarray, scale: float) -> list[Finding]:
    """Findings of a depth map (H, W) in metres read from a sensor's `raw` values times `scale`: the checks
    of every depth map (`checks.check_depth`), and an error when the median lies beyond what an RGB-D
    camera sees (0.1 to 20 m), with the power of ten that would put it at about 2 m."""
    valid = np.isfinite(depth) & (depth > 0)
    if valid.mean() >= DEPTH_MIN_VALID:
        median = float(np.median(depth[valid]))
        if not DEPTH_NEAR_MEDIAN_M <= median <= DEPTH_FAR_MEDIAN_M:
            raw_median = float(np.median(raw[valid]))
            hint = 10.0 ** round(math.log10(2.0 / raw_median))
            return [
                error(
                    f"median depth is {median:.3g} m with --depth-scale {scale:g} (metres per stored unit), beyond "
                    f"what an RGB-D camera sees ({DEPTH_NEAR_MEDIAN_M:g} to {DEPTH_FAR_MEDIAN_M:g} m): the unit is "
                    f"wrong; these values fit --depth-scale {hint:g}"
                )
            ]
    return check_depth(depth)


# Intrinsics ----------------------------------------------------------------------------------------------


def _text_matrix(path: Path) -> np.ndarray:
    """The matrix of numbers of a text file (rows on lines, separated by spaces or commas)."""
    try:
        rows = [[float(v) for v in line.replace(",", " ").split()] for line in path.read_text().splitlines()]
    except (ValueError, UnicodeDecodeError):
        raise BundleError(path, "not a 3x3 or 4x4 matrix of numbers (nor a JSON camera: name it .json)") from None
    rows = [row for row in rows if row]
    if not rows or any(len(row) != len(rows[0]) for row in rows):
        raise BundleError(path, "not a 3x3 or 4x4 matrix of numbers (rows of unequal length, or empty)")
    return np.asarray(rows)


def _intrinsic_matrix(path: Path, value: Any) -> np.ndarray:
    """K (3, 3) of a 3 x 3 matrix, or of a 4 x 4 one [[K, 0], [0, 1]] (ScanNet's intrinsic_color.txt)."""
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = np.empty(0)
    if matrix.shape == (4, 4) and np.all(np.isfinite(matrix)):
        if not (np.allclose(matrix[3], [0, 0, 0, 1]) and np.allclose(matrix[:3, 3], 0)):
            raise BundleError(path, f"a 4x4 intrinsic matrix must be [[K, 0], [0, 1]], got {matrix.tolist()}")
        matrix = matrix[:3, :3]
    if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
        told = f"a {' x '.join(map(str, matrix.shape))} array" if matrix.size else repr(value)  # one line
        raise BundleError(path, f"K must be a 3x3 (or 4x4) matrix of finite numbers, got {told}")
    return matrix


def read_intrinsics(path: Path, width: int, height: int) -> Camera:
    """The camera of a width x height image from an intrinsics file (module docstring), K in pixels of that
    image, checked (`checks.check_intrinsics`); a JSON camera of another image size is refused."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(path, "file not found")
    if path.suffix.lower() != ".json":
        K = _intrinsic_matrix(path, _text_matrix(path))
    else:
        data = _read_json(path)
        if not isinstance(data, Mapping):
            raise BundleError(path, "expected a JSON object with K, or with fx, fy, cx, cy")
        if "width" in data or "height" in data:
            camera = read_camera(path)  # a camera.json: checked for its own size; its up and cam_to_world are kept
            if (camera.width, camera.height) != (width, height):
                raise BundleError(
                    path,
                    f"is the camera of a {camera.width} x {camera.height} image, not of the {width} x {height} one",
                )
            return camera
        if "K" in data:
            K = _intrinsic_matrix(path, data["K"])
        elif all(key in data for key in ("fx", "fy", "cx", "cy")):
            fx, fy, cx, cy = (_number(path, key, data[key]) for key in ("fx", "fy", "cx", "cy"))
            K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        else:
            raise BundleError(path, "expected a JSON object with K, or with fx, fy, cx, cy")
    report(path, check_intrinsics(K, width, height), BundleError)
    return Camera(K=K, width=width, height=height)


def fov_intrinsics(fov_deg: float, width: int, height: int) -> np.ndarray:
    """K (3, 3) of a width x height image with a horizontal field of view in degrees, square pixels and the
    principal point at the image centre ((W - 1) / 2, (H - 1) / 2: pixel centres at whole numbers)."""
    if not (math.isfinite(fov_deg) and 0 < fov_deg < MAX_FIELD_OF_VIEW_DEG):
        raise BundleError(
            "--fov",
            f"the horizontal field of view must lie between 0 and {MAX_FIELD_OF_VIEW_DEG:g} degrees, got {fov_deg:g}",
        )
    focal = width / 2 / math.tan(math.radians(fov_deg) / 2)
    K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    report("--fov", check_intrinsics(K, width, height), BundleError)
    return K


def scale_intrinsics(K: np.ndarray, size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """K (3, 3) of an image of `size` (W, H) resized to `new_size` (W', H'): a pixel centre u maps to
    (u + 0.5) W' / W - 0.5 (pixel edges onto pixel edges, as image resizing does)."""
    sx, sy = new_size[0] / size[0], new_size[1] / size[1]
    return np.array([[sx, 0.0, (sx - 1) / 2], [0.0, sy, (sy - 1) / 2], [0.0, 0.0, 1.0]]) @ K


def _aspect_differs(size: tuple[int, int], other: tuple[int, int]) -> bool:
    return abs((size[0] / size[1]) / (other[0] / other[1]) - 1) > ASPECT_TOLERANCE


def depth_intrinsics(
    colour: Camera, depth_size: tuple[int, int], depth_path: Path, intrinsics_path: Path | None
) -> np.ndarray:
    """K (3, 3) of the depth image of `depth_size` (W, H): read from `intrinsics_path`, else the colour K
    when the sizes agree, else the colour K scaled to the depth's size (right only when both images share
    the optical centre and the field of view); refused when their aspect ratios differ."""
    if intrinsics_path is not None:
        return read_intrinsics(intrinsics_path, *depth_size).K
    colour_size = (colour.width, colour.height)
    if depth_size == colour_size:
        return colour.K
    if _aspect_differs(colour_size, depth_size):
        raise BundleError(
            depth_path,
            f"depth is {depth_size[0]} x {depth_size[1]} and the colour image {colour_size[0]} x {colour_size[1]}: "
            "their aspect ratios differ, so the colour camera's K cannot be scaled to the depth; give the depth "
            "camera's K with --depth-intrinsics",
        )
    log.info(
        "%s: no --depth-intrinsics: the depth's K is the colour K scaled from %d x %d to %d x %d, right only when "
        "both cameras share the optical centre and field of view",
        depth_path,
        *colour_size,
        *depth_size,
    )
    return scale_intrinsics(colour.K, colour_size, depth_size)


# Registration --------------------------------------------------------------------------------------------


def default_size(colour_size: tuple[int, int], depth_size: tuple[int, int]) -> tuple[int, int]:
    """The bundle's (W, H): the depth's pixel grid when it has the colour image's aspect ratio and is no larger
    (every bundle pixel has a depth pixel of its own, and the bundle is as small as the depth allows), else
    the colour image scaled uniformly to the depth's width (never enlarged)."""
    if not _aspect_differs(colour_size, depth_size) and depth_size[0] <= colour_size[0]:
        return depth_size
    factor = min(1.0, depth_size[0] / colour_size[0])
    return max(1, round(colour_size[0] * factor)), max(1, round(colour_size[1] * factor))


def resample_nearest(values: np.ndarray, K_from: np.ndarray, K_to: np.ndarray, size_to: tuple[int, int]) -> np.ndarray:
    """`values` (H, W, ...) of a camera with intrinsics K_from, seen by a camera at the same place and
    orientation with intrinsics K_to and image size `size_to` (W', H'): each of its pixels takes the value of
    the nearest pixel along its ray (never a mix of values, so depths across an edge are never averaged),
    or 0 (unknown) where that lies outside `values`. Returns (H', W', ...) of values' dtype."""
    height, width = values.shape[:2]
    pixels = pixel_rays(size_to[1], size_to[0], K_to) @ K_from.T  # (H', W', 3), third coordinate 1
    cols, rows = np.rint(pixels[..., 0]).astype(np.int64), np.rint(pixels[..., 1]).astype(np.int64)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    out = np.zeros((size_to[1], size_to[0], *values.shape[2:]), dtype=values.dtype)
    out[inside] = values[rows[inside], cols[inside]]
    return out


def _warn_exif_orientation(path: Path) -> None:
    """Warn when a photo asks viewers to turn it: its intrinsics and depth refer to the stored pixels."""
    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, ValueError):
        return  # read_image has reported what is wrong with the file
    if orientation not in (None, 1):
        log.warning(
            "%s: EXIF orientation %s is ignored: the intrinsics and the depth refer to the pixels as stored",
            path,
            orientation,
        )


# Detections ----------------------------------------------------------------------------------------------


def read_box_detections(path: Path, width: int, height: int, cads: CadIndex) -> list[Detection]:
    """The detections of a boxes JSON (module docstring) on the width x height colour image, in its pixels;
    ids default to the record's position, scores to 1. Each must name a CAD of `cads` of its category."""
    path = Path(path)
    records = _read_json(path)
    if not isinstance(records, list):
        raise BundleError(path, 'expected a JSON list of detections [{"bbox": [x1, y1, x2, y2], "category", "cad"}]')
    detections, seen = [], set()
    for index, record in enumerate(records):
        where = f"detection #{index}"
        _require(path, where, record, ("bbox", "category"))
        det_id = _integer(path, f"{where} id", record.get("id", index))
        if det_id in seen:
            raise BundleError(path, f"{where}: duplicate id {det_id}")
        seen.add(det_id)
        bbox = _vector(path, f"{where} bbox", record["bbox"], 4)
        if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
            raise BundleError(path, f"{where}: empty box {bbox.tolist()} (need x2 > x1, y2 > y1)")
        category = _category(path, where, record["category"])
        cad = _detection_cad(path, where, record.get("cad"), category, cads)
        mask = None
        value = record.get("mask")
        if is_rle(value):
            mask = read_mask(value, height, width, named_in=path)
        elif value:
            mask = read_mask(path.parent / str(value), height, width)
        report(path, prefixed(where, check_detection(bbox, mask, width, height)), BundleError)
        score = _number(path, f"{where} score", record.get("score", 1.0))
        detections.append(
            Detection(det_id, category, bbox, cad, score, mask if mask is not None and mask.any() else None)
        )
    return detections


def _detection_cad(path: Path, where: str, cad: Any, category: str, cads: CadIndex) -> str | None:
    """The detection's CAD id, one of `cads` of the detection's class; None for a detection without "cad" (a
    category only, whose CAD `multisparc align --choose-cad` chooses among the class's models of `cads`)."""
    if cad is None:
        if not cads.ids_of(category):
            raise BundleError(
                path, f'{where}: no "cad", and {cads.source} holds no CAD of category {category!r} to choose from'
            )
        return None
    if isinstance(cad, str) and not cad.strip():
        raise BundleError(path, f"{where}: cad must be a CAD id of {cads.source}, got {cad!r}")
    if not isinstance(cad, str) or cad not in cads:
        raise BundleError(path, f"{where}: cad {cad!r} is not a CAD id of {cads.source}")
    if cads[cad].category != category:
        raise BundleError(path, f"{where}: cad {cad!r} is a {cads[cad].category} in {cads.source}, not a {category}")
    return cad


def resize_detections(detections: list[Detection], size: tuple[int, int], new_size: tuple[int, int]) -> list[Detection]:
    """Detections of an image of `size` (W, H) on that image resized to `new_size`: boxes scaled about pixel
    edges as `scale_intrinsics` (u -> (u + 0.5) W' / W - 0.5), masks by nearest neighbour."""
    if size == new_size:
        return detections
    factors = np.tile([new_size[0] / size[0], new_size[1] / size[1]], 2)
    resized = []
    for det in detections:
        mask = det.mask
        if mask is not None:
            image = Image.fromarray(mask.astype(np.uint8) * 255).resize(new_size, Image.Resampling.NEAREST)
            mask = np.asarray(image) > 0
            mask = mask if mask.any() else None
        bbox = (det.bbox + 0.5) * factors - 0.5
        resized.append(Detection(det.id, det.category, bbox, det.cad, det.score, mask))
    return resized


# The bundle ----------------------------------------------------------------------------------------------


def colour_camera(size: tuple[int, int], intrinsics_path: Path | None, fov_deg: float | None) -> Camera:
    """The camera of the colour image of `size` (W, H): from `intrinsics_path`, else from `fov_deg`."""
    if intrinsics_path is not None:
        return read_intrinsics(intrinsics_path, *size)
    if fov_deg is not None:
        return Camera(K=fov_intrinsics(fov_deg, *size), width=size[0], height=size[1])
    raise BundleError("--intrinsics", "give the colour camera's intrinsics (--intrinsics FILE) or --fov DEG")


def register_depth(
    depth: np.ndarray, normals: np.ndarray, K_depth: np.ndarray, K: np.ndarray, size: tuple[int, int], named: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Depth (H, W) metres and normals (H, W, 3) camera frame of the depth camera K_depth, looked up at the
    pixels of the camera K of `size` (W, H) (`resample_nearest`); refused, naming the file `named`, when they
    cover almost none of its view."""
    registered = resample_nearest(depth, K_depth, K, size)
    covered = float((registered > 0).mean())
    if covered < DEPTH_MIN_VALID:
        raise BundleError(
            named,
            f"the depth covers {100 * covered:.2f} % of the colour camera's view: is it registered to the colour "
            "image, and are the depth camera's intrinsics right?",
        )
    return registered, resample_nearest(normals, K_depth, K, size)


def rgbd_bundle(
    name: str,
    image_path: Path,
    depth_path: Path,
    detections_path: Path,
    cads: CadIndex,
    intrinsics_path: Path | None = None,
    fov_deg: float | None = None,
    depth_scale: float | None = None,
    depth_intrinsics_path: Path | None = None,
    size: tuple[int, int] | None = None,
    normals_radius: int = DEFAULT_RADIUS,
) -> SceneBundle:
    """The scene bundle `name` of one RGB-D frame (module docstring): the colour camera's view at `size`
    (W, H; None: `default_size`), with depth (H, W) metres and normals (H, W, 3) camera frame registered into
    it, and the detections scaled to it. The camera comes from `intrinsics_path` or, without it, `fov_deg`."""
    if depth_scale is not None and not (math.isfinite(depth_scale) and depth_scale > 0):
        raise BundleError("--depth-scale", f"must be a positive number of metres per stored unit, got {depth_scale:g}")
    image = read_image(image_path)
    _warn_exif_orientation(image_path)
    colour_size = (image.shape[1], image.shape[0])
    camera = colour_camera(colour_size, intrinsics_path, fov_deg)
    detections = read_box_detections(detections_path, *colour_size, cads)
    depth = read_depth_image(depth_path, depth_scale)
    depth_size = (depth.shape[1], depth.shape[0])
    K_depth = depth_intrinsics(camera, depth_size, depth_path, depth_intrinsics_path)
    normals = normals_from_depth(depth, K_depth, radius=normals_radius)  # on the depth's own grid: no resampling
    if size is None:
        size = default_size(colour_size, depth_size)
    elif _aspect_differs(colour_size, size):
        log.warning("--size %d x %d changes the colour image's aspect ratio: its pixels are no longer square", *size)
    K = scale_intrinsics(camera.K, colour_size, size)
    report("--size", check_intrinsics(K, *size), BundleError)
    depth, normals = register_depth(depth, normals, K_depth, K, size, depth_intrinsics_path or depth_path)
    if size != colour_size:
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
    camera = Camera(K=K, width=size[0], height=size[1], cam_to_world=camera.cam_to_world, up=camera.up)
    return SceneBundle(
        name, Observation(image, camera, depth, normals), resize_detections(detections, colour_size, size)
    )


def check_new_bundle_dir(out: Path) -> None:
    """Refuse an output folder that is a file or holds anything (a bundle is written whole or not at all,
    never over another)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BundleError(out, "is a file; --out is the scene bundle folder to write")
    if out.is_dir() and any(out.iterdir()):
        raise BundleError(
            out, "already exists and is not empty; remove it or give another --out (nothing is overwritten)"
        )


def write_new_bundle(out: Path, bundle: SceneBundle) -> Path:
    """Write `bundle` as the new folder `out` (`check_new_bundle_dir`), whole or not at all: it is written
    beside `out`, read back as `align` reads it, then renamed into place."""
    out = Path(out)
    check_new_bundle_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.partial"
    staging.mkdir()  # unlike mkdtemp's, its permissions follow the umask, as those of the final folder should
    try:
        write_bundle(staging, bundle)
        read_bundle(staging)
        if out.is_dir():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def write_rgbd_frame(bundle: SceneBundle, folder: Path, with_cads: bool = True) -> dict[str, Path]:
    """What an RGB-D camera and a box detector give of a scene bundle, written into `folder`: color.jpg
    (quality 95), depth.png (uint16 millimetres, 0 unknown), intrinsic.txt (the 3 x 3 K) and boxes.json (each
    detection's bbox, category, score and, `with_cads`, its cad; no ids, no masks). Returns the paths by the
    `rgbd_bundle` argument each is for: image, depth, intrinsics, detections."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    obs = bundle.observation
    paths = {
        "image": folder / "color.jpg",
        "depth": folder / "depth.png",
        "intrinsics": folder / "intrinsic.txt",
        "detections": folder / "boxes.json",
    }
    Image.fromarray(obs.image).save(paths["image"], quality=95)
    depth = np.where(np.isfinite(obs.depth), obs.depth, 0.0)
    Image.fromarray(np.round(depth * 1000).astype(np.uint16)).save(paths["depth"])
    np.savetxt(paths["intrinsics"], obs.camera.K)
    boxes = [{"bbox": det.bbox.tolist(), "category": det.category, "score": det.score} for det in bundle.detections]
    if with_cads:
        for box, det in zip(boxes, bundle.detections, strict=True):
            box["cad"] = det.cad
    paths["detections"].write_text(json.dumps(boxes))
    return paths
