"""Sparse input tokens (paper Sec. 3.2): what the network sees of each detection.

Every token has C_INPUT = 13 channels, `[r, g, b, nx, ny, nz, depth, mask, px, py, pz, token_type,
detection_id]` (the index constants below). Detection k of an image gets N_input = n_bbox + 2 n_cad
tokens, in this order:

- box tokens (type 0): n_bbox integer pixels drawn uniformly from the detection box enlarged by
  `box_enlarge` and clipped to the image; the observation's rgb in [0, 1], normal (camera frame, facing
  the camera), z-depth in metres and the value of detection k's mask at the pixel, plus the pixel's unit
  bearing normalize(K^-1 [u, v, 1]).
- reprojected tokens (type 1): the n_cad CAD points under the current pose projected into the image and
  rounded to the nearest pixel; the same observation channels and bearing at that pixel.
- CAD tokens (type 2): the n_cad CAD points in the current pose; normal = the CAD's outward normal turned
  into the camera frame, depth = the point's z in metres, bearing = point / ||point||, rgb and mask 0.
  The normals are deliberately not flipped towards the camera (unlike the observation's): whether a
  point faces the camera or away from it tells the network which side of the model it sees.

Validity is explicit, never a clamped wrong pixel: a reprojected token is invalid when its point lies at
or behind the camera (z <= MIN_DEPTH) or rounds to a pixel outside the image; a CAD token is invalid
when its point lies at or behind the camera (points beside the image stay valid: they still describe
the model). Invalid tokens are zero in all 13 channels and False in the token mask. Box tokens are
always valid. Unknown observed depth or normals (0 or NaN) enter as 0.

`detection_id` is the detection's slot, its position in the list of detections handed to these
functions (and renumbered to its slot in the forward pass by `multisparc.inputs.batch.collate`), never
the user's detection id. The same k indexes the pixel source's detections (whose mask to read).

Cost: box tokens do not depend on the pose, so `sample_box_tokens` runs once per image and
`pose_tokens` once per refinement step for all detections and hypotheses together; each makes one
`PixelSource.sample` call, which for synthetic scenes is one sparse render.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from multisparc.datasets.pixels import PixelData, PixelSource
from multisparc.geometry import MIN_DEPTH, Pose, clip_box, enlarge_box, project
from multisparc.inputs.config import InputConfig
from multisparc.render import pixel_rays

RGB = slice(0, 3)
NORMAL = slice(3, 6)
DEPTH = 6
MASK = 7
BEARING = slice(8, 11)
TOKEN_TYPE = 11
DETECTION_ID = 12
C_INPUT = 13
CHANNEL_NAMES = ("r", "g", "b", "nx", "ny", "nz", "depth", "mask", "px", "py", "pz", "token_type", "detection_id")

TYPE_BOX = 0
TYPE_REPROJECTED = 1
TYPE_CAD = 2


def _check_pixel_data(data: PixelData, n_pixels: int) -> None:
    """Raise ValueError unless a pixel source answered n_pixels values of the documented shapes."""
    expected = {"rgb": (n_pixels, 3), "normals": (n_pixels, 3), "depth": (n_pixels,), "mask": (n_pixels,)}
    for name, shape in expected.items():
        actual = np.shape(getattr(data, name))
        if actual != shape:
            raise ValueError(f"pixel source returned {name} of shape {actual} for {n_pixels} pixels, expected {shape}")


def _observed_tokens(data: PixelData, pixels: np.ndarray, K: np.ndarray, token_type: int, ids: np.ndarray) -> Tensor:
    """`_observed_array` as a tensor."""
    return torch.from_numpy(_observed_array(data, pixels, K, token_type, ids))


def _observed_array(data: PixelData, pixels: np.ndarray, K: np.ndarray, token_type: int, ids: np.ndarray) -> np.ndarray:
    """(V, 13) float32 tokens of V sampled pixels (V, 2) int (col, row) under intrinsics K (3, 3): the
    observation channels (NaN as 0), the pixels' unit bearings, the token type and detection ids (V,)."""
    n_pixels = len(ids)
    _check_pixel_data(data, n_pixels)
    tokens = np.empty((n_pixels, C_INPUT), dtype=np.float32)
    tokens[:, RGB] = data.rgb
    tokens[:, NORMAL] = data.normals
    tokens[:, DEPTH] = data.depth
    tokens[:, MASK] = data.mask
    observed = tokens[:, : MASK + 1]
    if not np.isfinite(observed).all():
        np.nan_to_num(observed, copy=False, nan=0.0)
    # The numpy twin of `pixel_bearings`: several times faster than torch's batched 3x3 products.
    tokens[:, BEARING] = pixel_rays(np.asarray(K, dtype=np.float64), pixels)
    tokens[:, TOKEN_TYPE] = token_type
    tokens[:, DETECTION_ID] = ids
    return tokens


def _intrinsics(source: PixelSource, dtype: torch.dtype) -> Tensor:
    return torch.as_tensor(np.asarray(source.K), dtype=dtype)


def sample_box_tokens(
    source: PixelSource,
    boxes: np.ndarray | Tensor,
    config: InputConfig,
    rng: np.random.Generator | Sequence[np.random.Generator],
) -> Tensor:
    """Box tokens of every detection of one image, with a single `source.sample` call.

    boxes (K, 4) [x1, y1, x2, y2] pixels, box k belonging to the source's detection k. Pixels are drawn
    uniformly with replacement from the integer pixels of the box enlarged by `config.box_enlarge` and
    clipped to the image (a region narrower than a pixel uses its nearest pixel). rng: one generator for
    all boxes, or K generators, box k's pixels drawn from rng[k] exactly as if box k were sampled alone
    (so that a detection's pixels do not depend on the other detections of the image).
    Returns (K, n_bbox, 13) float32, all valid; reuse them for every pose of the image.
    """
    boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float64))
    if boxes.dim() != 2 or boxes.shape[-1] != 4 or not bool(torch.isfinite(boxes).all()):
        raise ValueError(f"boxes must be a finite (K, 4) array of [x1, y1, x2, y2], got shape {tuple(boxes.shape)}")
    n_boxes, width, height = len(boxes), source.width, source.height
    if n_boxes == 0:
        return torch.zeros(0, config.n_bbox, C_INPUT)
    enlarged = enlarge_box(boxes, config.box_enlarge)
    outside = (enlarged[:, 2] < 0) | (enlarged[:, 3] < 0) | (enlarged[:, 0] > width - 1) | (enlarged[:, 1] > height - 1)
    if bool(outside.any()):
        k = int(torch.nonzero(outside)[0])
        raise ValueError(f"detection {k}: box {boxes[k].tolist()} lies outside the {width} x {height} image")
    region = clip_box(enlarged, width, height)
    low, high = torch.ceil(region[:, :2]), torch.floor(region[:, 2:])
    nearest = torch.floor(0.5 * (region[:, :2] + region[:, 2:]) + 0.5)
    empty = low > high
    low, high = torch.where(empty, nearest, low).long().numpy(), torch.where(empty, nearest, high).long().numpy()
    if isinstance(rng, np.random.Generator):
        size = (n_boxes, config.n_bbox)
        cols = rng.integers(low[:, :1], high[:, :1], size=size, endpoint=True)
        rows = rng.integers(low[:, 1:], high[:, 1:], size=size, endpoint=True)
    else:
        if len(rng) != n_boxes:
            raise ValueError(f"{len(rng)} generators for {n_boxes} boxes: give one generator, or one per box")
        # The very calls of a lone box (K = 1), so that each box gets the same pixels as alone.
        size, col_draws, row_draws = (1, config.n_bbox), [], []
        for k, generator in enumerate(rng):
            col_draws.append(generator.integers(low[k : k + 1, :1], high[k : k + 1, :1], size=size, endpoint=True))
            row_draws.append(generator.integers(low[k : k + 1, 1:], high[k : k + 1, 1:], size=size, endpoint=True))
        cols, rows = np.concatenate(col_draws), np.concatenate(row_draws)
    pixels = np.stack([cols, rows], axis=-1).reshape(-1, 2)
    detection_ids = np.repeat(np.arange(n_boxes), config.n_bbox)
    data = source.sample(pixels, detection_ids)
    return _observed_tokens(data, pixels, source.K, TYPE_BOX, detection_ids).reshape(n_boxes, config.n_bbox, C_INPUT)


def pose_tokens(
    source: PixelSource, cad_points: np.ndarray | Tensor, cad_normals: np.ndarray | Tensor, poses: Pose
) -> tuple[Tensor, Tensor]:
    """Reprojected and CAD tokens of all detections under all poses, with at most one `source.sample` call.

    cad_points, cad_normals (..., K, n_cad, 3): CAD-frame points (metres, the CAD file's own frame) and
    unit outward normals, broadcast against poses of batch shape (*H, K), e.g. (hypotheses, detections):
    pose [..., k] places detection k's CAD. The source is not called when no point is visible.
    Returns tokens (*H, K, 2 n_cad, 13) float32 (n_cad reprojected tokens, then n_cad CAD tokens) and
    token_mask (*H, K, 2 n_cad) bool, on the CPU whatever the poses' device. No gradient flows into the
    poses: tokens are network inputs.
    """
    if len(poses.shape) == 0:
        raise ValueError("poses must have batch shape (..., K) with one pose per detection")
    dtype = poses.t.dtype
    cad_points = torch.as_tensor(cad_points, dtype=dtype, device="cpu")
    cad_normals = torch.as_tensor(cad_normals, dtype=dtype, device="cpu")
    if cad_points.shape != cad_normals.shape or cad_points.dim() < 3 or cad_points.shape[-1] != 3:
        raise ValueError(
            f"cad_points and cad_normals must share a shape (..., K, n_cad, 3), got "
            f"{tuple(cad_points.shape)} and {tuple(cad_normals.shape)}"
        )
    with torch.no_grad():
        # The pixel source lives on the CPU, so tokens are built there; TokenBatch.to moves them.
        poses = poses.detach().to("cpu")
        points = poses.apply(cad_points)
        if points.shape[:-2] != poses.shape:
            raise ValueError(
                f"cad_points {tuple(cad_points.shape)} do not broadcast against poses of batch shape "
                f"{tuple(poses.shape)}: expected (..., K, n_cad, 3) with K = {poses.shape[-1]}"
            )
        normals = poses.apply_normals(cad_normals)
        uv, z = project(points, _intrinsics(source, dtype))
        bearings = torch.nn.functional.normalize(points.float(), dim=-1)
        normals, uv, z, bearings = normals.numpy(), uv.numpy(), z.numpy(), bearings.numpy()

    # The rest is elementwise arithmetic, selection and copying, done in numpy: the same values as in
    # torch with a fraction of its per-operation overhead at these sizes (a few thousand points a pass).
    in_front = z > MIN_DEPTH
    pixels = np.floor(uv + 0.5)
    inside = in_front & (pixels >= 0).all(-1)
    inside &= (pixels[..., 0] <= source.width - 1) & (pixels[..., 1] <= source.height - 1)
    detection_ids = np.broadcast_to(np.arange(z.shape[-2])[:, None], z.shape)

    n_cad = z.shape[-1]
    tokens = np.zeros((*z.shape[:-1], 2 * n_cad, C_INPUT), dtype=np.float32)
    reprojected, cad = tokens[..., :n_cad, :], tokens[..., n_cad:, :]
    visible_pixels, visible_ids = pixels[inside].astype(np.int64), detection_ids[inside]
    if len(visible_ids):
        data = source.sample(visible_pixels, visible_ids)
        reprojected[inside] = _observed_array(data, visible_pixels, source.K, TYPE_REPROJECTED, visible_ids)
    cad[..., NORMAL] = normals
    cad[..., DEPTH] = z
    cad[..., BEARING] = bearings
    cad[..., TOKEN_TYPE] = TYPE_CAD
    cad[..., DETECTION_ID] = detection_ids
    cad[~in_front] = 0.0
    return torch.from_numpy(tokens), torch.from_numpy(np.concatenate([inside, in_front], axis=-1))


def step_tokens(
    box_tokens: Tensor,
    source: PixelSource,
    cad_points: np.ndarray | Tensor,
    cad_normals: np.ndarray | Tensor,
    poses: Pose,
) -> tuple[Tensor, Tensor]:
    """All tokens of one refinement step: reused box tokens joined with this step's pose tokens.

    box_tokens (K, n_bbox, 13) from `sample_box_tokens`; the other arguments as in `pose_tokens`.
    Returns tokens (*H, K, N_input, 13) float32 and token_mask (*H, K, N_input) bool, N_input =
    n_bbox + 2 n_cad, each detection's tokens ordered box, reprojected, CAD.
    """
    if box_tokens.dim() != 3 or box_tokens.shape[-1] != C_INPUT:
        raise ValueError(f"box_tokens must have shape (K, n_bbox, {C_INPUT}), got {tuple(box_tokens.shape)}")
    if len(poses.shape) == 0 or box_tokens.shape[0] != poses.shape[-1]:
        raise ValueError(
            f"{box_tokens.shape[0]} detections have box tokens, but poses have batch shape {tuple(poses.shape)}"
        )
    tokens, token_mask = pose_tokens(source, cad_points, cad_normals, poses)
    boxes = box_tokens.expand(*tokens.shape[:-2], *box_tokens.shape[-2:])
    box_mask = torch.ones(boxes.shape[:-1], dtype=torch.bool)
    return torch.cat([boxes, tokens], dim=-2), torch.cat([box_mask, token_mask], dim=-1)
