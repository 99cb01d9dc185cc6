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

Optionally (`ModelConfig.compare_pairs` = n_cad), the comparison render-and-compare is named after,
made explicit per CAD point: reprojected token j and CAD token j (the last 2 n_cad tokens of an object,
in the order of `multisparc.inputs`) see the same pixel, one what the image holds there, the other what
the hypothesis puts there. Cross-attention pools tokens into latents without ever pairing two of them,
so it can only compare their distributions; a pose error of a few centimetres or degrees is a small
shift of those. Both tokens of a pair get (`pair_features`):

- the depth residual (observed z - CAD point z) / r, clipped to +-REL_CLIP, and its Fourier features:
  near zero where the hypothesis' visible surface lies on the observed one;
- a flag for a known observed depth;
- the normal residual in the hypothesis' axes, R^T (n_observed - n_CAD), and the agreement
  n_observed . n_CAD: how the surface has to turn, in the frame dR acts in;
- the turn about the hypothesis' up axis between the two normals: with alpha a normal's azimuth about
  object +Y and h its horizontal length (both of R^T n), h_obs h_CAD cos and sin of k (alpha_obs -
  alpha_CAD) for the harmonics k = 1, 2, 4.

A pair is valid when both tokens are (a reprojected token is invalid outside the image); invalid pairs
and box tokens get zeros. Every valid token also gets h cos(k alpha), h sin(k alpha) of its own normal.
Why azimuth harmonics: indoor objects are mostly vertical planes at right angles, so the yaw error of a
hypothesis shows as one shift of all observed normals' azimuths, which the harmonic k = 4 reads
unchanged across the four faces of a box. From the raw normals the network has to discover this
product-and-angle structure first: trained to correct yaw alone on fresh synthetic images, the `cpu`
network learned it within a few hundred steps with these features and not within twice as many
without them.

These features enter one linear layer, plus a learned embedding of the token type (box, reprojected,
CAD), plus a learned slot embedding when the network needs slot identity. The features of one object
depend on its own tokens only, so padded objects still cannot change real objects' outputs.

The paper's embedding (`LinearTokenEmbedding`, `ModelConfig.embedding = "linear"`) is none of this: the
13 token channels, detection id and token type included as numbers, go through one linear map.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from multisparc.inputs import (
    BEARING,
    C_INPUT,
    DEPTH,
    MASK,
    NORMAL,
    RGB,
    TOKEN_TYPE,
    TYPE_BOX,
    TYPE_CAD,
    TYPE_REPROJECTED,
)

N_FREQUENCIES = 4
REL_CLIP = 8.0
#: Smallest hypothesis radius and centre distance used in the normalisation, metres.
MIN_RADIUS = 0.01
N_TOKEN_TYPES = TYPE_CAD - TYPE_BOX + 1
#: Per set of axes: rel (3), its Fourier features (6 per frequency), normal (3), bearing (3).
N_AXES_FEATURES = 3 + 6 * N_FREQUENCIES + 3 + 3
#: rgb (3), mask, both sets of axes, depth flag, log |c|, log(r/|c|).
N_FEATURES = 3 + 1 + 2 * N_AXES_FEATURES + 1 + 2
#: Harmonics k of the azimuth of normals about the hypothesis' up axis (module docstring).
AZIMUTH_HARMONICS = (1, 2, 4)
#: Per token of a compared pair: depth residual and its Fourier features, depth flag, normal residual
#: in object axes (3), normal agreement, the turn between the normals (cos, sin per harmonic); then, on
#: every valid token, its own normal's azimuth harmonics (cos, sin per harmonic).
N_PAIR_FEATURES = 1 + 2 * N_FREQUENCIES + 1 + 3 + 1 + 2 * 2 * len(AZIMUTH_HARMONICS)


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


def _fourier(values: Tensor) -> Tensor:
    """(..., D) -> (..., 2 D N_FREQUENCIES): sin, then cos, of pi 2^k values, k < N_FREQUENCIES."""
    frequencies = math.pi * 2.0 ** torch.arange(N_FREQUENCIES, dtype=values.dtype, device=values.device)
    angles = (values[..., None] * frequencies).flatten(-2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def _rotations_or_identity(rotations: Tensor | None, tokens: Tensor) -> Tensor:
    """(..., 3, 3) rotations in the tokens' dtype; the identity per object of tokens (..., N, 13) if None."""
    if rotations is None:
        return torch.eye(3, dtype=tokens.dtype, device=tokens.device).expand(*tokens.shape[:-2], 3, 3)
    return rotations.to(tokens.dtype)


def _axes_features(rel: Tensor, normal: Tensor, bearing: Tensor) -> Tensor:
    """(..., 3) each -> (..., N_AXES_FEATURES): rel, sin and cos of its Fourier angles, normal, bearing."""
    return torch.cat([rel, _fourier(rel), normal, bearing], dim=-1)


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
    # Row vectors v (..., N, 3) in object axes: R^T v, i.e. v @ R.
    to_object = _rotations_or_identity(rotations, tokens)
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


def _azimuth_harmonics(normal: Tensor, rotations: Tensor) -> tuple[Tensor, Tensor]:
    """Normals (..., N, 3) camera frame, rotations (..., 3, 3) -> the normals' azimuth alpha (..., N)
    about the hypothesis' up axis (object +Y, from object +Z towards +X) and their horizontal length h."""
    n = torch.matmul(normal, rotations)
    return torch.atan2(n[..., 0], n[..., 2]), torch.hypot(n[..., 0], n[..., 2])


def _harmonics(alpha: Tensor, weight: Tensor) -> Tensor:
    """(...) angles and weights -> (..., 2 len(AZIMUTH_HARMONICS)): weight cos(k alpha), weight sin(k alpha)."""
    k = alpha.new_tensor(AZIMUTH_HARMONICS)
    angles = alpha[..., None] * k
    return torch.cat([weight[..., None] * angles.cos(), weight[..., None] * angles.sin()], dim=-1)


def pair_features(tokens: Tensor, valid: Tensor, n_pairs: int, rotations: Tensor | None = None) -> Tensor:
    """tokens (..., N, 13) of one object each, whose last 2 n_pairs are the reprojected then the CAD
    tokens of `multisparc.inputs`; valid (..., N) bool; rotations (..., 3, 3) or None (identity) ->
    (..., N, N_PAIR_FEATURES): the features of the module docstring, those of a pair on both of its
    tokens (zero on box tokens and invalid pairs), then every valid token's own azimuth harmonics.
    Raises ValueError when valid tokens at the pair positions are not of the types that layout puts
    there (tokens made with another n_cad)."""
    n = tokens.shape[-2]
    if not 1 <= n_pairs <= n // 2:
        raise ValueError(f"{n_pairs} compared pairs need at least {2 * n_pairs} tokens per object, got {n}")
    reprojected, cad = tokens[..., n - 2 * n_pairs : n - n_pairs, :], tokens[..., n - n_pairs :, :]
    valid_reprojected, valid_cad = valid[..., n - 2 * n_pairs : n - n_pairs], valid[..., n - n_pairs :]
    types = tokens[..., TOKEN_TYPE].round()
    misplaced = (valid_reprojected & (types[..., n - 2 * n_pairs : n - n_pairs] != TYPE_REPROJECTED)) | (
        valid_cad & (types[..., n - n_pairs :] != TYPE_CAD)
    )
    if bool(misplaced.any()):
        raise ValueError(
            f"the last {2 * n_pairs} tokens of an object are not {n_pairs} reprojected then {n_pairs} CAD tokens: "
            "the network's compare_pairs must equal the inputs' n_cad"
        )
    _, radius = hypothesis_frames(tokens, valid)
    pair_valid = valid_reprojected & valid_cad
    known = pair_valid & (reprojected[..., DEPTH] > 0)
    residual = ((reprojected[..., DEPTH] - cad[..., DEPTH]) / radius[..., None]).clamp(-REL_CLIP, REL_CLIP)
    residual = torch.where(known, residual, 0.0)[..., None]
    rotations = _rotations_or_identity(rotations, tokens)
    normal_residual = torch.matmul(reprojected[..., NORMAL] - cad[..., NORMAL], rotations)
    agreement = (reprojected[..., NORMAL] * cad[..., NORMAL]).sum(-1, keepdim=True)
    alpha, h = _azimuth_harmonics(tokens[..., NORMAL], rotations)
    alpha_seen, h_seen = alpha[..., n - 2 * n_pairs : n - n_pairs], h[..., n - 2 * n_pairs : n - n_pairs]
    alpha_cad, h_cad = alpha[..., n - n_pairs :], h[..., n - n_pairs :]
    turn = _harmonics(alpha_seen - alpha_cad, h_seen * h_cad)
    per_pair = torch.cat(
        [residual, torch.where(known[..., None], _fourier(residual), 0.0), known[..., None].to(tokens.dtype),
         normal_residual, agreement, turn],
        dim=-1,
    )
    per_pair = torch.where(pair_valid[..., None], per_pair, 0.0)
    box = per_pair.new_zeros(*tokens.shape[:-2], n - 2 * n_pairs, per_pair.shape[-1])
    paired = torch.cat([box, per_pair, per_pair], dim=-2)
    own = torch.where(valid[..., None], _harmonics(alpha, h), 0.0)
    return torch.cat([paired, own], dim=-1)


class TokenEmbedding(nn.Module):
    """tokens (B, M, N, 13), valid (B, M, N) bool, rotations (B, M, 3, 3) or None -> (B, M, N, dim): a
    linear map of `object_frame_features` (and of `pair_features` when n_pairs > 0, appended after them)
    plus a learned token-type embedding, plus a learned slot embedding when n_slots is given."""

    def __init__(self, dim: int, n_slots: int | None, n_pairs: int = 0) -> None:
        super().__init__()
        self.n_pairs = n_pairs
        self.features = nn.Linear(N_FEATURES + (N_PAIR_FEATURES if n_pairs else 0), dim)
        self.token_type = nn.Embedding(N_TOKEN_TYPES, dim)
        self.slot = nn.Embedding(n_slots, dim) if n_slots is not None else None

    def forward(self, tokens: Tensor, valid: Tensor, rotations: Tensor | None = None) -> Tensor:
        types = tokens[..., TOKEN_TYPE].round().long()
        if bool(((types < TYPE_BOX) | (types > TYPE_CAD)).any()):
            raise ValueError(f"token_type channel {TOKEN_TYPE} holds values outside {TYPE_BOX}..{TYPE_CAD}")
        features = object_frame_features(tokens, valid, rotations)
        if self.n_pairs:
            features = torch.cat([features, pair_features(tokens, valid, self.n_pairs, rotations)], dim=-1)
        embedded = self.features(features) + self.token_type(types)
        if self.slot is not None:
            embedded = embedded + self.slot.weight[: tokens.shape[1], None]
        return embedded


class LinearTokenEmbedding(nn.Module):
    """The paper's embedding: tokens (B, M, N, 13) -> (B, M, N, dim), one linear map of the raw channels
    (the Perceiver's cross-attention reads its C_input-channel inputs through linear maps alone).
    `valid` and `rotations` are accepted for the interface of `TokenEmbedding` and not used: invalid
    tokens are zero already and masked out as keys."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.features = nn.Linear(C_INPUT, dim)

    def forward(self, tokens: Tensor, valid: Tensor, rotations: Tensor | None = None) -> Tensor:
        return self.features(tokens)
