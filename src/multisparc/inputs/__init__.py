"""Sparse input generation (paper Sec. 3.2): tokens of box pixels, reprojected CAD points and posed CAD
points for every detection, and their batching into network inputs of n_mul object slots.

Per image: `sample_box_tokens` once, then per refinement step `step_tokens` for all detections and pose
hypotheses at once, then `collate_image` (or `collate` over several images) into a `TokenBatch`.
"""

from multisparc.inputs.batch import TokenBatch, chunk_indices, collate, collate_image, uncollate
from multisparc.inputs.config import InputConfig
from multisparc.inputs.tokens import (
    BEARING,
    C_INPUT,
    CHANNEL_NAMES,
    DEPTH,
    DETECTION_ID,
    MASK,
    NORMAL,
    RGB,
    TOKEN_TYPE,
    TYPE_BOX,
    TYPE_CAD,
    TYPE_REPROJECTED,
    pose_tokens,
    sample_box_tokens,
    step_tokens,
)

__all__ = [
    "BEARING",
    "CHANNEL_NAMES",
    "C_INPUT",
    "DEPTH",
    "DETECTION_ID",
    "MASK",
    "NORMAL",
    "RGB",
    "TOKEN_TYPE",
    "TYPE_BOX",
    "TYPE_CAD",
    "TYPE_REPROJECTED",
    "InputConfig",
    "TokenBatch",
    "chunk_indices",
    "collate",
    "collate_image",
    "pose_tokens",
    "sample_box_tokens",
    "step_tokens",
    "uncollate",
]
