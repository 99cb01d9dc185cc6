"""Intrinsics of a photo from its EXIF tags, or from a stated horizontal field of view.

    photo_intrinsics(path, width, height, fov_deg=None) -> PhotoIntrinsics(K (3, 3) pixels, source)

Square pixels and the principal point at the image centre ((W - 1) / 2, (H - 1) / 2), as
`datasets.rgbd.fov_intrinsics`; the focal length in pixels comes from, in this order:

1. `--fov DEG` when given: the user's word overrides the file.
2. EXIF FocalLengthIn35mmFilm (0xA405): the focal length a 36 x 24 mm frame would need for the same angle of
   view. The standard (CIPA DC-008) relates it by the diagonal, so f_px = f35 * hypot(W, H) / hypot(36, 24);
   for a 3:2 photo that equals f35 * W / 36. It is stored as whole millimetres (about 2 % at 26 mm).
3. EXIF FocalLength (0x920A, mm) with FocalPlaneXResolution / FocalPlaneResolutionUnit (0xA20E, 0xA210: the
   sensor's pixels per inch or centimetre): f_px = f_mm * pixels per mm, scaled by W / PixelXDimension
   (0xA002) when the photo was resized after the camera wrote the tags.
4. Neither: DEFAULT_FOV_DEG horizontal.

The tags describe the pixels as stored. A photo with an EXIF orientation (a phone held upright) is used
turned as viewers show it (`upright_photo`): the depth network expects the floor at the bottom. Its focal
length in pixels is the stored image's (pixels are square), and K is built on the turned image's size.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from multisparc.datasets.checks import MAX_FIELD_OF_VIEW_DEG
from multisparc.datasets.rgbd import fov_intrinsics

log = logging.getLogger(__name__)

#: Horizontal field of view (degrees) of a photo without EXIF focal length: ScanNet's colour camera has 58,
#: the Hypersim renders that Depth Anything V2's indoor model was trained on 60, a phone's main camera 60 to 70.
DEFAULT_FOV_DEG = 60.0
#: Diagonal of the 36 x 24 mm frame that the 35 mm equivalent focal length refers to.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)

EXIF_IFD = 0x8769
EXIF_ORIENTATION = 0x0112
#: EXIF orientations that turn the image by 90 degrees (its width and height swap).
QUARTER_TURNS = (5, 6, 7, 8)
FOCAL_LENGTH = 0x920A
FOCAL_LENGTH_35MM = 0xA405
FOCAL_PLANE_X_RESOLUTION = 0xA20E
FOCAL_PLANE_Y_RESOLUTION = 0xA20F
FOCAL_PLANE_RESOLUTION_UNIT = 0xA210
PIXEL_X_DIMENSION = 0xA002
PIXEL_Y_DIMENSION = 0xA003
#: FocalPlaneResolutionUnit values (EXIF 2.3: 2 inch, the default, and 3 cm; 4 mm and 5 um occur in the wild).
MM_PER_UNIT = {2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}


@dataclass(frozen=True)
class PhotoIntrinsics:
    """K (3, 3) in pixels of the stored photo, and where its focal length came from (one line for people)."""

    K: np.ndarray
    source: str

    @property
    def horizontal_fov_deg(self) -> float:
        width = 2 * (self.K[0, 2] + 0.5)
        return math.degrees(2 * math.atan(width / 2 / self.K[0, 0]))


def _number(value: object) -> float | None:
    """A positive finite EXIF number (int or rational), else None (absent, zero = unknown, malformed)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def read_exif_tags(path: Path) -> dict[int, object]:
    """The EXIF tags of IFD0 and of the Exif sub-IFD of an image file, merged (the sub-IFD wins); empty when
    the file has none or they cannot be parsed."""
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            tags = dict(exif)
            tags.update(exif.get_ifd(EXIF_IFD))
    except (OSError, ValueError, SyntaxError):  # PIL raises SyntaxError on some malformed EXIF blocks
        return {}
    return tags


def focal_from_exif(tags: dict[int, object], width: int, height: int) -> tuple[float, str] | None:
    """The focal length in pixels of the width x height photo whose EXIF tags are `tags`, and a line saying
    which tags gave it; None when they do not tell it."""
    f35 = _number(tags.get(FOCAL_LENGTH_35MM))
    if f35 is not None:
        focal = f35 * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM
        return focal, f"EXIF 35 mm equivalent focal length {f35:g} mm"
    f_mm = _number(tags.get(FOCAL_LENGTH))
    x_resolution = _number(tags.get(FOCAL_PLANE_X_RESOLUTION))
    unit = tags.get(FOCAL_PLANE_RESOLUTION_UNIT, 2)
    if f_mm is not None and x_resolution is not None and unit in MM_PER_UNIT:
        pixels_per_mm = x_resolution / MM_PER_UNIT[unit]  # type: ignore[index]
        stored_width = _number(tags.get(PIXEL_X_DIMENSION))
        resized = width / stored_width if stored_width is not None else 1.0
        focal = f_mm * pixels_per_mm * resized
        return focal, f"EXIF focal length {f_mm:g} mm on a sensor of {pixels_per_mm:g} pixels per mm"
    return None


def upright_photo(path: Path) -> np.ndarray:
    """The photo (H, W, 3) uint8 RGB turned as its EXIF orientation asks (as viewers show it)."""
    from PIL import ImageOps

    from multisparc.datasets.bundle import BundleError

    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (OSError, ValueError, SyntaxError) as err:
        raise BundleError(path, f"not a readable image ({err})") from None


def photo_intrinsics(path: Path, width: int, height: int, fov_deg: float | None = None) -> PhotoIntrinsics:
    """K (3, 3) pixels of the photo at `path` turned upright (`upright_photo`), width x height (module
    docstring): from `fov_deg` (horizontal degrees) when given, else from its EXIF focal length, else
    DEFAULT_FOV_DEG."""
    if fov_deg is not None:
        return PhotoIntrinsics(fov_intrinsics(fov_deg, width, height), f"--fov {fov_deg:g} deg horizontal")
    tags = read_exif_tags(path)
    turned = tags.get(EXIF_ORIENTATION) in QUARTER_TURNS
    found = focal_from_exif(tags, *((height, width) if turned else (width, height)))  # the stored pixels
    if found is not None:
        focal, source = found
        fov = math.degrees(2 * math.atan(width / 2 / focal))
        if 0 < fov < MAX_FIELD_OF_VIEW_DEG:
            K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
            return PhotoIntrinsics(K, f"{source} ({fov:.1f} deg horizontal)")
        log.warning("%s: %s gives a %.0f deg field of view: ignored", path, source, fov)
    K = fov_intrinsics(DEFAULT_FOV_DEG, width, height)
    return PhotoIntrinsics(K, f"no EXIF focal length: the default {DEFAULT_FOV_DEG:g} deg horizontal field of view")
