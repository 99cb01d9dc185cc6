"""Token embedding of Multi-SPARC-Net: every token placed relative to its object's current hypothesis.

The tokens of `multisparc.inputs` carry absolute camera-frame quantities (z-depth in metres, unit
bearings). Fed linearly, a depth of 3 m and one of 3.1 m differ by 3 % of one channel, and the
LayerNorm in front of each cross-attention divides most of that away. The embedding therefore turns
every token with a known depth into a 3D point and expresses it relative to the object's current pose
hypothesis, whose centre and size it reads from the object's own CAD tokens:

- centre c (3,): the mean of the object's valid CAD points, camera frame, metres;
- radius r: the RMS distance of those points from c, metres (the hypothesis' size).

Per token, in two sets of axes, the camera's and the hypothesis' own (the camera-from-object rotation R
of the pose the tokens were made under, carried by `TokenBatch`):

- camera axes: `rel = (p - c) / r` (units of the hypothesis' size, clipped to +-REL_CLIP so that far
  walls behind an object stay bounded) and its Fourier features sin/cos(pi 2^k rel), k < N_FREQUENCIES
  (fine offsets become large feature changes), plus the normal and bearing as they are: what the
  translation update (polar, camera frame) is read from;
- object axes: R^T rel with its Fourier features, R^T normal and R^T bearing. Here the CAD tokens look
  the same under every hypothesis and the observed surface appears turned by exactly the rotation the
  update R' = R dR has to undo (dR acts in the object frame), whatever the camera and the hypothesis.

Plus the rgb and mask channels, a flag for a known depth, and per object log |c| and log(r / |c|), the
two numbers that turn offsets in units of the size into the distance and angle updates of the polar
translation. Box and reprojected tokens without a depth (0 in the token) get rel = 0 and the flag 0.

These features enter one linear layer, plus a learned embedding of the token type (box, reprojected,
CAD), plus a learned slot embedding when the network needs slot identity. The features of one object
depend on its own tokens only, so padded objects still cannot change real objects' outputs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from multisparc.inputs import BEARING, DEPTH, MASK, NORMAL, RGB, TOKEN_TYPE, TYPE_BOX, TYPE_CAD

N_FREQUENCIES = 4
REL_CLIP = 8.0
#: Smallest hypothesis radius and centre distance used in the normalisation, metres.
MIN_RADIUS = 0.01
N_TOKEN_TYPES = TYPE_CAD - TYPE_BOX + 1
#: Per set of axes: rel (3), its Fourier features (6 per frequency), normal (3), bearing (3).
N_AXES_FEATURES = 3 + 6 * N_FREQUENCIES + 3 + 3
#: rgb (3), mask, both sets of axes, depth flag, log |c|, log(r/|c|).
N_FEATURES = 3 + 1 + 2 * N_AXES_FEATURES + 1 + 2


def hypothesis_frames(tokens: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Centre (..., 3) and radius (...,) of each object's current hypothesis (module docstring).

    tokens (..., N, 13) of one object each, valid (..., N) bool. An object without valid CAD tokens
    gets centre (0, 0, 1) and radius 1, harmless values for padded slots.
    """
    return _frames(token_points(tokens), tokens, valid)


def _frames(points: Tensor, tokens: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """`hypothesis_frames` from the tokens' points (..., N, 3), computed once by the caller."""
    cad = valid & (tokens[..., TOKEN_TYPE].round() == TYPE_CAD)
    weights = cad.to(tokens.dtype)[..., None]
    count = weights.sum(-2)
    centre = (points * weights).sum(-2) / count.clamp(min=1.0)
    spread = ((points - centre[..., None, :]).square().sum(-1, keepdim=True) * weights).sum(-2) / count.clamp(min=1.0)
    radius = spread.squeeze(-1).sqrt().clamp(min=MIN_RADIUS)
    has_cad = count.squeeze(-1) > 0
    centre = torch.where(has_cad[..., None], centre, centre.new_tensor([0.0, 0.0, 1.0]))
    radius = torch.where(has_cad, radius, torch.ones_like(radius))
    return centre, radius


def token_points(tokens: Tensor) -> Tensor:
    """(..., N, 13) tokens -> (..., N, 3) camera-frame points, metres: bearing scaled to the token's
    z-depth. Zero where the depth is unknown (0)."""
    bearing, depth = tokens[..., BEARING], tokens[..., DEPTH]
    bz = bearing[..., 2]
    facing = bz.abs() > 1e-6
    scale = torch.where(facing, depth / torch.where(facing, bz, 1.0), 0.0)
    return bearing * scale[..., None]


def _axes_features(rel: Tensor, normal: Tensor, bearing: Tensor) -> Tensor:
    """(..., 3) each -> (..., N_AXES_FEATURES): rel, sin and cos of its Fourier angles, normal, bearing."""
    frequencies = math.pi * 2.0 ** torch.arange(N_FREQUENCIES, dtype=rel.dtype, device=rel.device)
    angles = (rel[..., None] * frequencies).flatten(-2)
    return torch.cat([rel, angles.sin(), angles.cos(), normal, bearing], dim=-1)


def object_frame_features(tokens: Tensor, valid: Tensor, rotations: Tensor | None = None) -> Tensor:
    """tokens (..., N, 13) of one object each, valid (..., N) bool, rotations (..., 3, 3) camera from
    object of each object's hypothesis (None: the identity) -> (..., N, N_FEATURES) features of the
    module docstring. Invalid tokens get zero features."""
    points = token_points(tokens)
    centre, radius = _frames(points, tokens, valid)
    has_depth = tokens[..., DEPTH] > 0
    rel = (points - centre[..., None, :]) / radius[..., None, None]
    rel = torch.where(has_depth[..., None], rel.clamp(-REL_CLIP, REL_CLIP), 0.0)
    normal, bearing = tokens[..., NORMAL], tokens[..., BEARING]
    if rotations is None:
        rotations = torch.eye(3, dtype=tokens.dtype, device=tokens.device).expand(*tokens.shape[:-2], 3, 3)
    # Row vectors v (..., N, 3) in object axes: R^T v, i.e. v @ R.
    to_object = rotations.to(tokens.dtype)
    object_axes = [torch.matmul(v, to_object) for v in (rel, normal, bearing)]
    distance = centre.norm(dim=-1).clamp(min=MIN_RADIUS)
    globals_ = torch.stack([distance.log(), (radius / distance).log()], dim=-1)
    features = torch.cat(
        [
            tokens[..., RGB],
            tokens[..., MASK : MASK + 1],
            _axes_features(rel, normal, bearing),
            _axes_features(*object_axes),
            has_depth[..., None].to(tokens.dtype),
            globals_[..., None, :].expand(*rel.shape[:-1], 2),
        ],
        dim=-1,
    )
    return torch.where(valid[..., None], features, 0.0)


class TokenEmbedding(nn.Module):
    """tokens (B, M, N, 13), valid (B, M, N) bool, rotations (B, M, 3, 3) or None -> (B, M, N, dim): a
    linear map of `object_frame_features` plus a learned token-type embedding, plus a learned slot
    embedding when n_slots is given."""

    def __init__(self, dim: int, n_slots: int | None) -> None:
        super().__init__()
        self.features = nn.Linear(N_FEATURES, dim)
        self.token_type = nn.Embedding(N_TOKEN_TYPES, dim)
        self.slot = nn.Embedding(n_slots, dim) if n_slots is not None else None

    def forward(self, tokens: Tensor, valid: Tensor, rotations: Tensor | None = None) -> Tensor:
        types = tokens[..., TOKEN_TYPE].round().long()
        if bool(((types < TYPE_BOX) | (types > TYPE_CAD)).any()):
            raise ValueError(f"token_type channel {TOKEN_TYPE} holds values outside {TYPE_BOX}..{TYPE_CAD}")
        embedded = self.features(object_frame_features(tokens, valid, rotations)) + self.token_type(types)
        if self.slot is not None:
            embedded = embedded + self.slot.weight[: tokens.shape[1], None]
        return embedded
