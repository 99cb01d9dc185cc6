"""ScanNet frames as the pipeline sees them: colour, depth and normals of one frame in the colour camera's
view at the bundle size, with the camera's pose in the scan.

Two on-disk layouts of a scan `<scannet>/<scan>/` are read (both ScanNet v2):

- SensReader's export (`ScanNet/SensReader/python/reader.py` of the ScanNet repository)::

      color/<n>.jpg  depth/<n>.png  pose/<n>.txt  intrinsic/intrinsic_color.txt  intrinsic/intrinsic_depth.txt

  every frame, numbered 0, 1, 2, ... without leading zeros;
- `scannet_frames_25k` (the subset ROCA and the paper use: every 100th frame)::

      color/000000.jpg  depth/000000.png  pose/000000.txt  intrinsics_color.txt  intrinsics_depth.txt

  numbered by the frame's index in the scan with six digits (000100 is frame 100).

Depth PNGs hold 16-bit z-depth in millimetres (0 = unknown) at 640 x 480; colour JPEGs are larger (1296 x 968
in SensReader's export). `pose/<n>.txt` is the 4 x 4 camera-to-scan matrix (OpenCV camera axes; the scan
frame is that of `<scan>_vh_clean_2.ply`, z up); ScanNet marks frames its tracking lost with `-inf` poses,
and those frames are skipped. The intrinsics files hold 4 x 4 matrices `[[K, 0], [0, 1]]` (3 x 3 accepted).
ScanNet's depth is registered to the colour camera (same viewpoint; only K and the size differ), so the
extrinsics files are not read.

An intrinsics file is taken for the image it is used with when its principal point lies inside that image;
when it does not, and the size the principal point implies (about 2 cx + 1 by 2 cy + 1) has the image's aspect
ratio, K is scaled to the image (a calibration of the full-size sensor used with a downsized copy), with a
note in the log. Anything else is an error naming the file.

The bundle keeps the colour camera's view at the chosen size (ROCA's 480 x 360 by default): colour resized
with Lanczos and K scaled about pixel edges (`rgbd.scale_intrinsics`); depth and normals (fitted on the
depth's own grid, `datasets.normals`) looked up at the nearest depth pixel of each bundle pixel
(`rgbd.register_depth`), so that depths are never averaged across an edge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from multisparc.datasets.bundle import BundleError, Camera, Observation, read_image
from multisparc.datasets.checks import check_intrinsics, check_rigid, report
from multisparc.datasets.normals import DEFAULT_RADIUS, normals_from_depth
from multisparc.datasets.rgbd import (
    ASPECT_TOLERANCE,
    _intrinsic_matrix,
    _text_matrix,
    read_depth_image,
    register_depth,
    scale_intrinsics,
)

log = logging.getLogger(__name__)

SENSREADER = "sensreader"
FRAMES_25K = "frames_25k"
#: (W, H) of the bundles: the images ROCA and the paper work on.
DEFAULT_SIZE = (480, 360)
#: Gravity up in the scan frame: ScanNet's reconstructions are z-up.
SCAN_UP = np.array([0.0, 0.0, 1.0])
#: An intrinsics file is rescaled only to an image whose size differs from its own by more than this share.
_RESCALE_MIN_CHANGE = 0.1
_NOTED: set[tuple[str, tuple[int, int]]] = set()


@dataclass(frozen=True)
class ScanFolder:
    """One scan's folder: its id, path, layout (SENSREADER or FRAMES_25K) and intrinsics files (4 x 4 text)."""

    scan: str
    path: Path
    layout: str
    colour_intrinsics: Path
    depth_intrinsics: Path


@dataclass(frozen=True)
class ScanFrame:
    """One frame's files: number (its index in the scan), colour (JPEG), depth (16-bit PNG, mm), pose (4 x 4
    camera-to-scan text)."""

    number: int
    colour: Path
    depth: Path
    pose: Path

    @property
    def name(self) -> str:
        """The frame's six-digit number, as scannet_frames_25k names it (000100)."""
        return f"{self.number:06d}"


def find_scan(scannet: Path, scan: str) -> ScanFolder:
    """The folder `<scannet>/<scan>/` and its layout (module docstring); BundleError naming it otherwise."""
    path = Path(scannet) / scan
    if not path.is_dir():
        raise BundleError(path, "scan folder not found (expected <scannet>/<scan id>/ with color/, depth/, pose/)")
    if (path / "intrinsic").is_dir():
        intrinsic = path / "intrinsic"
        return ScanFolder(scan, path, SENSREADER, intrinsic / "intrinsic_color.txt", intrinsic / "intrinsic_depth.txt")
    if (path / "intrinsics_color.txt").exists() or (path / "intrinsics_depth.txt").exists():
        return ScanFolder(scan, path, FRAMES_25K, path / "intrinsics_color.txt", path / "intrinsics_depth.txt")
    raise BundleError(
        path,
        "neither SensReader's layout (intrinsic/intrinsic_color.txt) nor scannet_frames_25k's (intrinsics_color.txt)",
    )


def list_frames(folder: ScanFolder, every: int = 1) -> list[ScanFrame]:
    """The frames of a scan whose number is a multiple of `every`, by number: one per `color/<n>.jpg`, with
    the depth and pose files of the same name (their presence is checked when each frame is read)."""
    if every < 1:
        raise ValueError(f"--every must be at least 1, got {every}")
    colour_dir = folder.path / "color"
    if not colour_dir.is_dir():
        raise BundleError(colour_dir, "folder not found: the scan's colour frames (<n>.jpg)")
    frames = []
    for file in colour_dir.glob("*.jpg"):
        if not file.stem.isdigit():
            raise BundleError(file, "a colour frame's name must be its frame number (0.jpg or 000000.jpg)")
        number = int(file.stem)
        if number % every == 0:
            depth, pose = folder.path / "depth" / f"{file.stem}.png", folder.path / "pose" / f"{file.stem}.txt"
            frames.append(ScanFrame(number, file, depth, pose))
    if not frames:
        raise BundleError(colour_dir, f"no colour frame (<n>.jpg) whose number is a multiple of {every}")
    return sorted(frames, key=lambda frame: frame.number)


def read_pose(path: Path) -> np.ndarray | None:
    """The (4, 4) camera-to-scan matrix of a pose file (metres), or None when it holds inf or NaN (ScanNet's
    mark of a frame its tracking lost); BundleError naming the file when it is missing or no rigid 4 x 4."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(path, "file not found")
    try:
        matrix = np.asarray(_text_matrix(path), dtype=np.float64)
    except BundleError:
        raise BundleError(path, "not a 4x4 camera-to-world matrix of numbers") from None
    if matrix.shape != (4, 4):
        raise BundleError(path, f"expected a 4x4 camera-to-world matrix, got {matrix.shape[0]} x {matrix.shape[1]}")
    if not np.all(np.isfinite(matrix)):
        return None
    report(path, check_rigid(matrix), BundleError)
    return matrix


def read_intrinsics_matrix(path: Path) -> np.ndarray:
    """K (3, 3) pixels of a 4 x 4 `[[K, 0], [0, 1]]` or 3 x 3 text file; BundleError naming it otherwise."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(path, "file not found")
    return _intrinsic_matrix(path, _text_matrix(path))


def _aspect_differs(size: tuple[int, int], other: tuple[int, int]) -> bool:
    return abs((size[0] / size[1]) / (other[0] / other[1]) - 1) > ASPECT_TOLERANCE


def fit_intrinsics(K: np.ndarray, path: Path, size: tuple[int, int]) -> np.ndarray:
    """K (3, 3) in pixels of the image of `size` (W, H): K itself when it fits that image, else K scaled from
    the size its principal point implies when that size has the image's aspect ratio (module docstring);
    BundleError naming the intrinsics file `path` otherwise."""
    findings = check_intrinsics(K, *size)
    if not findings:
        return K
    scaled = _rescaled(K, size)
    if scaled is not None:
        if (str(path), size) not in _NOTED:  # once per file and size, not once per frame
            _NOTED.add((str(path), size))
            log.info("%s: a calibration of about %d x %d, scaled to the %d x %d image", path, *_implied_size(K), *size)
        return scaled
    report(path, findings, BundleError)
    return K


def _implied_size(K: np.ndarray) -> tuple[int, int]:
    """(W, H) of the image whose centre is K's principal point (pixel centres at whole numbers)."""
    return round(2 * K[0, 2] + 1), round(2 * K[1, 2] + 1)


def _rescaled(K: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """K scaled from the size its principal point implies to `size` (W, H), when that size has the same aspect
    ratio, differs enough to be another image, and the result fits; None otherwise."""
    if not (np.allclose(K[2], [0.0, 0.0, 1.0]) and K[0, 2] > 0 and K[1, 2] > 0):
        return None
    native = _implied_size(K)
    if abs(native[0] / size[0] - 1) <= _RESCALE_MIN_CHANGE or _aspect_differs(native, size):
        return None
    scaled = scale_intrinsics(K, native, size)
    return None if check_intrinsics(scaled, *size) else scaled


@dataclass(frozen=True)
class FrameObservation:
    """A frame in the bundle's view: observation (image, K, depth (H, W) metres, normals (H, W, 3) camera
    frame, cam_to_world (4, 4) camera-to-scan, up (3,) camera frame) and the frame it came from."""

    frame: ScanFrame
    observation: Observation


def frame_observation(
    folder: ScanFolder,
    frame: ScanFrame,
    size: tuple[int, int] = DEFAULT_SIZE,
    normals_radius: int = DEFAULT_RADIUS,
) -> FrameObservation | None:
    """The observation of one frame at `size` (W, H) (module docstring), or None when its pose holds inf or
    NaN. Every missing or malformed file is a BundleError naming it."""
    cam_to_world = read_pose(frame.pose)
    if cam_to_world is None:
        return None
    image = read_image(frame.colour)
    colour_size = (image.shape[1], image.shape[0])
    K_colour = fit_intrinsics(read_intrinsics_matrix(folder.colour_intrinsics), folder.colour_intrinsics, colour_size)
    depth = read_depth_image(frame.depth)  # 16-bit PNG: millimetres
    depth_size = (depth.shape[1], depth.shape[0])
    K_depth = fit_intrinsics(read_intrinsics_matrix(folder.depth_intrinsics), folder.depth_intrinsics, depth_size)
    normals = normals_from_depth(depth, K_depth, radius=normals_radius)  # on the depth's own grid
    K = scale_intrinsics(K_colour, colour_size, size)
    depth, normals = register_depth(depth, normals, K_depth, K, size, frame.depth)
    if size != colour_size:
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
    up = cam_to_world[:3, :3].T @ SCAN_UP
    camera = Camera(K=K, width=size[0], height=size[1], cam_to_world=cam_to_world, up=up)
    return FrameObservation(frame, Observation(image, camera, depth, normals))
