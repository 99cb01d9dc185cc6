"""One photo made into a scene bundle: the photo (or its downscaled copy), its camera, the predicted depth
and the normals fitted to it, and the detections when given.

    photo_bundle(name, photo, model, fov_deg, max_side, detections, cads) -> SceneBundle

Sizes: the bundle has the photo's size, or, when its longer side exceeds `max_side`, the photo scaled down
uniformly to that (K scaled as `datasets.rgbd.scale_intrinsics`, boxes with it): the network sees about
518 pixels on the shorter side, so larger depth maps add interpolation, not detail, and cost memory
(depth and normals take 16 bytes a pixel). The photo is turned upright as its EXIF orientation asks;
detections are read in the pixels of that upright photo, as viewers show it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from multisparc.datasets.bundle import Camera, Observation, SceneBundle
from multisparc.datasets.normals import normals_from_depth
from multisparc.datasets.rgbd import read_box_detections, resize_detections, scale_intrinsics
from multisparc.estimate.intrinsics import PhotoIntrinsics, photo_intrinsics, upright_photo

if TYPE_CHECKING:
    from multisparc.cad import CadIndex
    from multisparc.estimate.depth_model import DepthModel

#: Longer side in pixels of the bundles made from photos, by default.
DEFAULT_MAX_SIDE = 1024


def bundle_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(W, H) of a bundle made from a photo of `size` (W, H): the photo's, or scaled down uniformly so that
    its longer side is `max_side` (None or 0: never)."""
    width, height = size
    if not max_side or max(width, height) <= max_side:
        return size
    factor = max_side / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


def photo_bundle(
    name: str,
    photo: Path,
    model: DepthModel,
    fov_deg: float | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    detections: Path | None = None,
    cads: CadIndex | None = None,
) -> tuple[SceneBundle, PhotoIntrinsics]:
    """The scene bundle `name` of `photo` (module docstring) and the upright photo's intrinsics at its size:
    image (H, W, 3) uint8, camera K (3, 3) pixels, depth (H, W) metres predicted by `model`, normals (H, W, 3)
    camera frame facing the camera, and the detections of the boxes JSON `detections` (photo pixels; their
    CADs from `cads`) or none. BundleError naming the file when the photo or the boxes are unusable."""
    image = upright_photo(photo)
    size = (image.shape[1], image.shape[0])
    intrinsics = photo_intrinsics(photo, *size, fov_deg=fov_deg)
    boxes = [] if detections is None else read_box_detections(detections, *size, cads)
    out_size = bundle_size(size, max_side)
    K = scale_intrinsics(intrinsics.K, size, out_size)
    depth = model.predict(image, out_size)
    normals = normals_from_depth(depth, K)
    if out_size != size:
        image = np.asarray(Image.fromarray(image).resize(out_size, Image.Resampling.LANCZOS))
    observation = Observation(image, Camera(K=K, width=out_size[0], height=out_size[1]), depth, normals)
    return SceneBundle(name, observation, resize_detections(boxes, size, out_size)), intrinsics
