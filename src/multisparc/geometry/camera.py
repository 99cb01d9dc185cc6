"""Pinhole camera and 2D box geometry, batched torch.

Camera frame is OpenCV (x right, y down, z forward), metres. The pixel in column i, row j has its
centre at (u, v) = (i, j) and looks along the ray K^-1 [u, v, 1]. Depth is z-depth, not distance
along the ray. K is a pinhole matrix with last row [0, 0, 1]. Boxes are `[x1, y1, x2, y2]` in pixels.

Intrinsics broadcast "from the left": K of shape (*B, 3, 3) serves points of shape (*B, *N, 3),
so one camera per image projects any number of points without the caller adding axes.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Smallest z (metres) used as a divisor in `project`; uv of points with z <= MIN_DEPTH is meaningless.
MIN_DEPTH = 1e-6


def check_last_dims(tensor: Tensor, shape: tuple[int, ...], name: str) -> None:
    """Raise ValueError naming `name` unless tensor has shape (..., *shape); shared by this package."""
    if tensor.dim() < len(shape) or tuple(tensor.shape[-len(shape) :]) != shape:
        expected = ", ".join(["..."] + [str(n) for n in shape])
        raise ValueError(f"{name} must have shape ({expected}), got {tuple(tensor.shape)}")


def _align_intrinsics(K: Tensor, batch_ndim: int) -> Tensor:
    """K (*B, 3, 3) with trailing singleton axes so that it broadcasts against batch_ndim leading dims."""
    check_last_dims(K, (3, 3), "K")
    missing = batch_ndim - (K.dim() - 2)
    if missing <= 0:
        return K
    return K.reshape(K.shape[:-2] + (1,) * missing + (3, 3))


def project(points: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """Project camera-frame points to pixels.

    points (..., 3) camera frame, metres; K (*B, 3, 3) with *B a prefix of (...) or broadcastable to it.
    Returns uv (..., 2) pixels and z (...) metres. The division uses max(z, MIN_DEPTH), so uv is
    finite everywhere but meaningless where z <= MIN_DEPTH: mask those with the returned z.
    """
    check_last_dims(points, (3,), "points")
    K = _align_intrinsics(K, points.dim() - 1).to(points.dtype)
    image = (K @ points.unsqueeze(-1)).squeeze(-1)
    z = points[..., 2]
    uv = image[..., :2] / z.clamp(min=MIN_DEPTH).unsqueeze(-1)
    return uv, z


def _rays(uv: Tensor, K: Tensor) -> Tensor:
    """K^-1 [u, v, 1] for uv (..., 2): camera-frame directions with z = 1."""
    check_last_dims(uv, (2,), "uv")
    check_last_dims(K, (3, 3), "K")
    # Invert the few cameras once rather than solving one system per pixel.
    K_inv = _align_intrinsics(torch.linalg.inv(K.to(uv.dtype)), uv.dim() - 1)
    homogeneous = torch.cat([uv, torch.ones_like(uv[..., :1])], dim=-1)
    return (K_inv @ homogeneous.unsqueeze(-1)).squeeze(-1)


def backproject(uv: Tensor, depth: Tensor, K: Tensor) -> Tensor:
    """Lift pixels to camera-frame points.

    uv (..., 2) pixels; depth (...) z-depth metres; K (*B, 3, 3) as in `project`.
    Returns (..., 3) camera frame, metres, with z equal to depth (0 or NaN depth stays 0 or NaN).
    """
    return _rays(uv, K) * depth.unsqueeze(-1)


def pixel_grid(height: int, width: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """(H, W, 2) pixel centres (u, v) = (column, row)."""
    rows = torch.arange(height, dtype=dtype, device=device)
    cols = torch.arange(width, dtype=dtype, device=device)
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack([u, v], dim=-1)


def backproject_depth(depth: Tensor, K: Tensor) -> Tensor:
    """Lift a depth map to a point map.

    depth (*B, H, W) z-depth metres (0 or NaN = unknown, kept as is in z); K (*B, 3, 3).
    Returns (*B, H, W, 3) camera frame, metres.
    """
    if depth.dim() < 2:
        raise ValueError(f"depth must have shape (..., H, W), got {tuple(depth.shape)}")
    grid = pixel_grid(depth.shape[-2], depth.shape[-1], dtype=depth.dtype, device=depth.device)
    return backproject(grid.expand((*depth.shape, 2)), depth, K)


def pixel_bearings(uv: Tensor, K: Tensor) -> Tensor:
    """Unit viewing rays normalize(K^-1 [u, v, 1]) for uv (..., 2) pixels; returns (..., 3) camera frame."""
    return torch.nn.functional.normalize(_rays(uv, K), dim=-1)


def enlarge_box(box: Tensor, fraction: float = 0.1) -> Tensor:
    """Grow box (..., 4) about its centre: width and height grow by `fraction` of themselves."""
    check_last_dims(box, (4,), "box")
    size = box[..., 2:] - box[..., :2]
    margin = 0.5 * fraction * size
    return torch.cat([box[..., :2] - margin, box[..., 2:] + margin], dim=-1)


def clip_box(box: Tensor, width: int, height: int) -> Tensor:
    """Clip box (..., 4) to the pixel centres of a width x height image, [0, W-1] x [0, H-1]."""
    check_last_dims(box, (4,), "box")
    upper = box.new_tensor([width - 1, height - 1, width - 1, height - 1])
    return torch.minimum(box.clamp(min=0), upper)


def box_area(box: Tensor) -> Tensor:
    """Area (...) in square pixels of box (..., 4); empty or inverted boxes have area 0."""
    check_last_dims(box, (4,), "box")
    size = (box[..., 2:] - box[..., :2]).clamp(min=0)
    return size[..., 0] * size[..., 1]


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise intersection over union of a (..., N, 4) and b (..., M, 4); returns (..., N, M).

    Written here because torchvision (which has it) is not a dependency. Pairs with an empty union get 0.
    """
    check_last_dims(a, (4,), "a")
    check_last_dims(b, (4,), "b")
    if not a.is_floating_point():
        a = a.to(torch.get_default_dtype())
    b = b.to(a.dtype)
    a = a.unsqueeze(-2)
    b = b.unsqueeze(-3)
    top_left = torch.maximum(a[..., :2], b[..., :2])
    bottom_right = torch.minimum(a[..., 2:], b[..., 2:])
    intersection = box_area(torch.cat([top_left, bottom_right], dim=-1))
    union = box_area(a) + box_area(b) - intersection
    return torch.where(union > 0, intersection / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)
