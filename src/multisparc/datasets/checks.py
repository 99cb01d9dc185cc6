"""Plausibility checks of what the readers load, against the units and conventions of docs/CONVENTIONS.md.

Each check returns `Finding`s: an error where the input cannot give a right result (depth in
millimetres, normals facing away, a K that is not a pinhole matrix), a warning where it is usable but
degraded (few valid depth pixels, a mask mostly outside its box). Readers pass them to `report`, which
raises the first error as the reader's own error class naming the file, and logs the warnings.
docs/INPUTS.md lists every check. The thresholds leave the synthetic benchmark sets (clean, realistic
and predicted noise) free of errors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Depth: indoor scenes lie within about 10 m; a median beyond 100 m is a unit mistake (mm or cm).
DEPTH_MAX_MEDIAN_M = 100.0
DEPTH_FAR_MEDIAN_M = 20.0
DEPTH_NEAR_MEDIAN_M = 0.1
# Below 1 % valid pixels no object gets a depth of its own (every start falls back to 3 m).
DEPTH_MIN_VALID = 0.01
DEPTH_FEW_VALID = 0.3
# Sensors mark unknown depth with 0 or NaN; a few negative values are noise, most of them a flipped sign.
DEPTH_NEGATIVE_WARN = 0.01

# Normals: predicted normals tip over at grazing angles, a few per cent at most; a map that mostly faces
# away is flipped or in another camera frame (OpenGL's y up, z backward).
NORMALS_AWAY_WARN = 0.1
NORMALS_AWAY_ERROR = 0.5
NORMALS_FEW_KNOWN = 0.3
NORMAL_LENGTH_TOLERANCE = 0.1
NORMAL_LENGTH_RANGE = (0.5, 2.0)
# (n + 1) / 2-encoded normal images have no negative component; real camera-facing normals always do.
NORMALS_ENCODED = 0.99

# Intrinsics: beyond a 160 deg field of view no pinhole camera fits (K normalised by the image size,
# or a focal length in millimetres); a principal point far from the centre hints at a crop or a swap.
MAX_FIELD_OF_VIEW_DEG = 160.0
PRINCIPAL_OFFSET_WARN = 0.25
K_TOLERANCE = 1e-6
ROTATION_TOLERANCE = 1e-3

# Boxes and masks: detectors clip boxes to the image. The network samples the box enlarged by 10 %, so a mask
# outside that region tells it nothing of its object. A weak detector's boxes are often off their masks (the
# realistic benchmark sets move each box side by up to 10 % of the image: a small object's mask can lie
# mostly outside its box), so only a mask with almost nothing in its box is flagged, as another object's.
BOX_BEYOND_WARN = 0.1
MASK_BOX_GROWTH = 0.1
MASK_MIN_INSIDE = 0.02

# (file, problem) of the warnings logged so far in this process.
_LOGGED: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Finding:
    """One problem of an input: `error` (unusable) or a warning (usable, degraded), and what it is."""

    error: bool
    problem: str


def error(problem: str) -> Finding:
    """An unusable input."""
    return Finding(True, problem)


def warning(problem: str) -> Finding:
    """A usable but degraded input."""
    return Finding(False, problem)


def report(path: Path | str, findings: Iterable[Finding], error_type: Callable[[Path | str, str], Exception]) -> None:
    """Raise the first error as `error_type(path, problem)`; log every warning as `path: problem`, once per
    process (evaluation reads a bundle once per method: the same warning again would say nothing new)."""
    findings = list(findings)
    for finding in findings:
        if finding.error:
            raise error_type(path, finding.problem)
    for finding in findings:
        if (str(path), finding.problem) not in _LOGGED:
            _LOGGED.add((str(path), finding.problem))
            log.warning("%s: %s", path, finding.problem)


def prefixed(where: str, findings: Iterable[Finding]) -> list[Finding]:
    """The findings with `where: ` before each problem (which record of a file they concern)."""
    return [Finding(finding.error, f"{where}: {finding.problem}") for finding in findings]


# Depth ---------------------------------------------------------------------------------------------------


def depth_dtype_problem(dtype: np.dtype) -> Finding | None:
    """An error for a depth array that does not hold floating-point metres."""
    if dtype.kind in "ui":
        return error(
            f"holds integers ({dtype}), not metres: depth.npy is float z-depth in metres; if these are "
            "millimetres, divide by 1000 and save as float32, or save them unchanged as depth.png (uint16 millimetres)"
        )
    if dtype.kind != "f":
        return error(f"holds {dtype} values, not a float32 depth map in metres")
    return None


def check_depth(depth: np.ndarray) -> list[Finding]:
    """Findings of a float depth map (H, W) in metres, as read (0, NaN = unknown): valid share, units, sign."""
    finite = np.isfinite(depth)
    valid = finite & (depth > 0)
    negative = finite & (depth < 0)
    share = float(valid.mean()) if depth.size else 0.0
    if share < DEPTH_MIN_VALID:
        if negative.any() and negative.sum() >= valid.sum():
            return [
                error(
                    "depth is negative nearly everywhere: z-depth is positive in front of the camera (OpenCV "
                    "frame, z forward); negate it if it comes from an OpenGL-style camera looking along -z"
                )
            ]
        return [
            error(
                f"only {100 * share:.2f} % of the pixels have a valid depth (the rest 0, NaN or negative): "
                "no object can be placed"
            )
        ]
    findings = []
    median = float(np.median(depth[valid]))
    if median > DEPTH_MAX_MEDIAN_M:
        return [
            error(
                f"median depth is {median:.4g} m: the values look like millimetres (divide by 1000) or centimetres "
                "(by 100); depth.npy holds metres"
            )
        ]
    if median > DEPTH_FAR_MEDIAN_M:
        findings.append(warning(f"median depth is {median:.1f} m, far for an indoor scene: is it in metres?"))
    elif median < DEPTH_NEAR_MEDIAN_M:
        findings.append(warning(f"median depth is {median:.3f} m: is it in metres (not normalised or inverse depth)?"))
    if share < DEPTH_FEW_VALID:
        findings.append(
            warning(
                f"only {100 * share:.0f} % of the pixels have a valid depth; objects without depth "
                "in their box start at 3 m"
            )
        )
    if negative.mean() > DEPTH_NEGATIVE_WARN:
        findings.append(
            warning(f"{100 * negative.mean():.1f} % of the depth values are negative; they count as unknown")
        )
    return findings


# Normals -------------------------------------------------------------------------------------------------


def normals_dtype_problem(dtype: np.dtype) -> Finding | None:
    """An error for a normal array that does not hold floating-point vectors."""
    if dtype.kind in "ui":
        return error(
            f"holds integers ({dtype}): an encoded normal image? normals.npy holds float unit vectors in the "
            "camera frame; decode an 8-bit image with n = v / 127.5 - 1"
        )
    if dtype.kind != "f":
        return error(f"holds {dtype} values, not float32 unit normals")
    return None


def check_normals(normals: np.ndarray, K: np.ndarray | None) -> list[Finding]:
    """Findings of a float normal map (H, W, 3) as read (zero or NaN = unknown): known share, lengths,
    encoding, and orientation towards the camera (n . ray <= 0, with rays from K when given)."""
    length = np.linalg.norm(np.where(np.isfinite(normals), normals, 0.0), axis=-1)
    known = np.all(np.isfinite(normals), axis=-1) & (length > 1e-6)
    if not known.any():
        return [error("holds no known normal (all zero or NaN)")]
    findings = []
    median = float(np.median(length[known]))
    low, high = NORMAL_LENGTH_RANGE
    if not low <= median <= high:
        return [
            error(
                f"normals are not unit vectors (median length {median:.3g}): an encoded image? decode it to "
                "unit vectors in the camera frame"
            )
        ]
    if abs(median - 1.0) > NORMAL_LENGTH_TOLERANCE:
        findings.append(warning(f"normals are not unit vectors (median length {median:.3g}); they are renormalised"))
    values = normals[known]
    if np.mean(np.all(values >= 0, axis=-1)) > NORMALS_ENCODED:
        return [
            error(
                "no normal has a negative component: an encoded normal image ((n + 1) / 2)? decode it with "
                "n = 2 v - 1 (camera frame, facing the camera)"
            )
        ]
    if K is not None:
        rows, cols = np.nonzero(known)
        rays = np.linalg.solve(K, np.stack([cols, rows, np.ones_like(cols)]).astype(np.float64)).T
        away = float(np.mean(np.einsum("ij,ij->i", values, rays) > 0))
        if away > NORMALS_AWAY_ERROR:
            return [
                error(
                    f"{100 * away:.0f} % of the normals face away from the camera (n . ray > 0): normals face "
                    "the camera in the OpenCV frame (x right, y down, z forward); negate them if flipped, or "
                    "negate y and z if they are in OpenGL's frame (y up, z backward)"
                )
            ]
        if away > NORMALS_AWAY_WARN:
            findings.append(warning(f"{100 * away:.0f} % of the normals face away from the camera"))
    share = float(known.mean())
    if share < NORMALS_FEW_KNOWN:
        findings.append(warning(f"only {100 * share:.0f} % of the pixels have a known normal"))
    return findings


# Camera --------------------------------------------------------------------------------------------------


def check_intrinsics(K: np.ndarray, width: int, height: int) -> list[Finding]:
    """Findings of a finite (3, 3) K for a width x height image: pinhole form, focal lengths, principal point."""
    if not np.allclose(K[2], [0.0, 0.0, 1.0], rtol=0.0, atol=K_TOLERANCE):
        hint = ""
        if np.allclose(K[2, :2], 0.0) and K[2, 2] not in (0.0, 1.0):
            hint = f" (divide K by K[2][2] = {K[2, 2]:g}?)"
        elif np.allclose(K[0, 2], 0.0) and np.allclose(K[1, 2], 0.0):
            hint = " (transposed? the principal point goes in the last column)"
        return [error(f"K's last row must be [0, 0, 1], got {K[2].tolist()}{hint}")]
    if abs(K[1, 0]) > K_TOLERANCE:
        return [error(f"K must be upper-triangular (K[1][0] = 0), got K[1][0] = {K[1, 0]:g}")]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if fx <= 0 or fy <= 0:
        return [error(f"focal lengths must be positive pixels, got fx = {fx:g}, fy = {fy:g}")]
    fov = math.degrees(2 * math.atan(max(width / fx, height / fy) / 2))
    if fov > MAX_FIELD_OF_VIEW_DEG:
        return [
            error(
                f"focal lengths fx = {fx:g}, fy = {fy:g} give a {fov:.0f} deg field of view on a {width} x "
                f"{height} image: K is in pixels (not normalised by the image size, not millimetres)"
            )
        ]
    if not (-0.5 <= cx <= width - 0.5 and -0.5 <= cy <= height - 0.5):
        return [
            error(
                f"principal point ({cx:g}, {cy:g}) lies outside the {width} x {height} image: K is in pixels "
                "of this image"
            )
        ]
    offset = max(abs(cx - (width - 1) / 2) / width, abs(cy - (height - 1) / 2) / height)
    if offset > PRINCIPAL_OFFSET_WARN:
        return [
            warning(
                f"principal point ({cx:g}, {cy:g}) is far from the centre of the {width} x {height} image: "
                "is K for this image?"
            )
        ]
    return []


def check_rigid(matrix: np.ndarray) -> list[Finding]:
    """Findings of a finite (4, 4) cam_to_world: a rotation, a translation and the row [0, 0, 0, 1]."""
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], rtol=0.0, atol=K_TOLERANCE):
        return [error(f"cam_to_world's last row must be [0, 0, 0, 1], got {matrix[3].tolist()}")]
    R = matrix[:3, :3]
    deviation = float(np.abs(R.T @ R - np.eye(3)).max())
    if deviation > ROTATION_TOLERANCE or np.linalg.det(R) < 0:
        return [
            error(
                f"cam_to_world's 3x3 block is not a rotation (|R^T R - I| = {deviation:.3g}, "
                f"det {np.linalg.det(R):.3g}): a camera pose is rigid, in metres"
            )
        ]
    return []


# Boxes and masks ------------------------------------------------------------------------------------------


def check_box(bbox: np.ndarray, width: int, height: int) -> list[Finding]:
    """Findings of a non-empty box [x1, y1, x2, y2] for a width x height image: pixels, on the image."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    if max(width, height) > 2 and np.all((bbox >= 0) & (bbox <= 1)):
        return [error(f"box {bbox.tolist()} looks like fractions of the image: boxes are [x1, y1, x2, y2] in pixels")]
    if x2 < -0.5 or y2 < -0.5 or x1 > width - 0.5 or y1 > height - 0.5:
        return [
            error(
                f"box {bbox.tolist()} lies wholly outside the {width} x {height} image: boxes are pixels of this image"
            )
        ]
    beyond = max(-x1, x2 - width, 0.0) / width, max(-y1, y2 - height, 0.0) / height
    if max(beyond) > BOX_BEYOND_WARN:
        return [
            warning(
                f"box {[round(v, 1) for v in bbox.tolist()]} reaches far beyond the {width} x {height} "
                "image; it is clipped"
            )
        ]
    return []


def check_mask(mask: np.ndarray, bbox: np.ndarray) -> list[Finding]:
    """Findings of a detection's (H, W) bool mask against its box: empty, or (nearly) wholly outside it."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return [warning("mask is empty; the box stands for it")]
    x1, y1, x2, y2 = (float(v) for v in bbox)
    margin_x, margin_y = MASK_BOX_GROWTH / 2 * (x2 - x1) + 0.5, MASK_BOX_GROWTH / 2 * (y2 - y1) + 0.5
    inside = (cols >= x1 - margin_x) & (cols <= x2 + margin_x) & (rows >= y1 - margin_y) & (rows <= y2 + margin_y)
    share = float(inside.mean())
    if share < MASK_MIN_INSIDE:
        return [
            warning(
                f"its mask lies outside its box ({100 * share:.1f} % of the mask's pixels inside): does the mask "
                "belong to another object?"
            )
        ]
    return []


def check_detection(bbox: np.ndarray, mask: np.ndarray | None, width: int, height: int) -> list[Finding]:
    """Findings of a detection's non-empty box and optional mask on a width x height image."""
    findings = check_box(bbox, width, height)
    if mask is not None and not any(finding.error for finding in findings):
        findings += check_mask(mask, bbox)
    return findings
