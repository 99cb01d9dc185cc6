"""Batching token sets into network inputs of M = n_mul object slots (paper Sec. 3.2).

One batch item is one forward pass of the paper: up to n_mul detections of one image under one pose
hypothesis, processed jointly. Images with fewer detections are padded with all-zero objects
(`object_mask` False, `token_mask` False); images with more are split into chunks of consecutive
detections (`chunk_indices`), each chunk its own item. Hypotheses (e.g. the 4 initial azimuths) and
chunks go into the batch dim B and never share an item, so they cannot attend to each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from multisparc.inputs.tokens import C_INPUT, DETECTION_ID


@dataclass
class TokenBatch:
    """Network input: tokens (B, M, N_input, 13) float32; token_mask (B, M, N_input) bool, True = real
    token; object_mask (B, M) bool, True = real object; rotations (B, M, 3, 3) float32, the rotation
    (camera from object) of the pose hypothesis each object's tokens were made under, which the network
    uses to read the tokens in the hypothesis' own axes. Padded slots have all-zero tokens, both masks
    False and the identity rotation. The detection_id channel holds each object's slot m."""

    tokens: Tensor
    token_mask: Tensor
    object_mask: Tensor
    rotations: Tensor

    def __post_init__(self) -> None:
        if self.tokens.dim() != 4 or self.tokens.shape[-1] != C_INPUT:
            raise ValueError(f"tokens must have shape (B, M, N_input, {C_INPUT}), got {tuple(self.tokens.shape)}")
        if self.token_mask.shape != self.tokens.shape[:-1] or self.token_mask.dtype != torch.bool:
            raise ValueError(
                f"token_mask must be bool of shape {tuple(self.tokens.shape[:-1])}, "
                f"got {self.token_mask.dtype} {tuple(self.token_mask.shape)}"
            )
        if self.object_mask.shape != self.tokens.shape[:2] or self.object_mask.dtype != torch.bool:
            raise ValueError(
                f"object_mask must be bool of shape {tuple(self.tokens.shape[:2])}, "
                f"got {self.object_mask.dtype} {tuple(self.object_mask.shape)}"
            )
        if self.rotations.shape != (*self.tokens.shape[:2], 3, 3):
            raise ValueError(
                f"rotations must have shape {(*self.tokens.shape[:2], 3, 3)}, got {tuple(self.rotations.shape)}"
            )

    @property
    def batch_size(self) -> int:
        """B, the number of items (forward passes of the paper) in the batch."""
        return self.tokens.shape[0]

    @property
    def n_mul(self) -> int:
        """M, the object slots per item."""
        return self.tokens.shape[1]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TokenBatch:
        """The same batch on `device`."""
        return TokenBatch(
            self.tokens.to(device, non_blocking=non_blocking),
            self.token_mask.to(device, non_blocking=non_blocking),
            self.object_mask.to(device, non_blocking=non_blocking),
            self.rotations.to(device, non_blocking=non_blocking),
        )


def _check_n_mul(n_mul: int) -> None:
    if isinstance(n_mul, bool) or not isinstance(n_mul, int) or n_mul < 1:
        raise ValueError(f"n_mul must be a positive integer, got {n_mul!r}")


def chunk_indices(n_detections: int, n_mul: int) -> list[range]:
    """Consecutive chunks of at most n_mul detection indices covering 0 .. n_detections - 1.

    chunk_indices(12, 5) == [range(0, 5), range(5, 10), range(10, 12)]; no detections give no chunk.
    """
    _check_n_mul(n_mul)
    if n_detections < 0:
        raise ValueError(f"n_detections must be >= 0, got {n_detections}")
    return [range(start, min(start + n_mul, n_detections)) for start in range(0, n_detections, n_mul)]


def collate(items: Sequence[tuple[Tensor, Tensor, Tensor]], n_mul: int) -> TokenBatch:
    """Pad and stack items into a batch of M = n_mul slots.

    items: (tokens (K_i, N_input, 13), token_mask (K_i, N_input) bool, rotations (K_i, 3, 3) of the poses
    the tokens were made under) with 1 <= K_i <= n_mul and the same N_input for all; object k of item i
    lands in slot k of batch row i. The detection_id channel of the real tokens is rewritten to the
    slot, so a chunk of a large image looks like a small image.
    """
    _check_n_mul(n_mul)
    if not items:
        raise ValueError("collate needs at least one item")
    n_input = items[0][0].shape[-2]
    tokens = torch.zeros(len(items), n_mul, n_input, C_INPUT)
    token_mask = torch.zeros(len(items), n_mul, n_input, dtype=torch.bool)
    object_mask = torch.zeros(len(items), n_mul, dtype=torch.bool)
    rotations = torch.eye(3).repeat(len(items), n_mul, 1, 1)
    for index, (item_tokens, item_mask, item_rotations) in enumerate(items):
        if item_tokens.dim() != 3 or item_tokens.shape[1:] != (n_input, C_INPUT):
            raise ValueError(
                f"item {index}: tokens must have shape (K, {n_input}, {C_INPUT}), got {tuple(item_tokens.shape)}"
            )
        if item_mask.shape != item_tokens.shape[:-1]:
            raise ValueError(
                f"item {index}: token_mask shape {tuple(item_mask.shape)} does not match tokens "
                f"{tuple(item_tokens.shape)}"
            )
        n_objects = item_tokens.shape[0]
        if item_rotations.shape != (n_objects, 3, 3):
            raise ValueError(
                f"item {index}: rotations must have shape ({n_objects}, 3, 3), got {tuple(item_rotations.shape)}"
            )
        if not 1 <= n_objects <= n_mul:
            raise ValueError(
                f"item {index}: has {n_objects} objects, expected 1 to n_mul = {n_mul} (split with chunk_indices)"
            )
        tokens[index, :n_objects] = item_tokens
        token_mask[index, :n_objects] = item_mask
        object_mask[index, :n_objects] = True
        rotations[index, :n_objects] = item_rotations
    slots = torch.arange(n_mul, dtype=torch.float32).view(1, n_mul, 1)
    tokens[..., DETECTION_ID] = torch.where(token_mask, slots, 0.0)
    return TokenBatch(tokens, token_mask, object_mask, rotations)


def collate_image(tokens: Tensor, token_mask: Tensor, rotations: Tensor, n_mul: int) -> TokenBatch:
    """Batch one image's tokens under several hypotheses, chunking its detections by n_mul.

    tokens (*H, K, N_input, 13), token_mask (*H, K, N_input) from `step_tokens`, rotations (*H, K, 3, 3)
    of the poses they were made under. Returns B =
    prod(*H) * ceil(K / n_mul) items in (hypothesis, chunk) order; `uncollate(values, batch.object_mask)`
    then gives the per-object values in (*H, K) order, ready for `.reshape(*H, K, ...)`.
    """
    if tokens.dim() < 3 or token_mask.shape != tokens.shape[:-1]:
        raise ValueError(
            f"tokens (*H, K, N_input, 13) and token_mask (*H, K, N_input) disagree: "
            f"{tuple(tokens.shape)} and {tuple(token_mask.shape)}"
        )
    if rotations.shape != (*tokens.shape[:-2], 3, 3):
        raise ValueError(f"rotations must have shape {(*tokens.shape[:-2], 3, 3)}, got {tuple(rotations.shape)}")
    n_detections, n_input = tokens.shape[-3], tokens.shape[-2]
    if n_detections == 0:
        raise ValueError("an image without detections has nothing to batch")
    _check_n_mul(n_mul)
    n_hypotheses = math.prod(tokens.shape[:-3])
    n_chunks = len(chunk_indices(n_detections, n_mul))
    # `collate` of the (hypothesis, chunk) items, in one copy: pad the detections to n_chunks * n_mul
    # slots, then item (h, c) is row h * n_chunks + c and detection c * n_mul + m sits in its slot m.
    shape = (n_hypotheses, n_chunks * n_mul, n_input)
    padded = torch.zeros(*shape, C_INPUT)
    padded[:, :n_detections] = tokens.reshape(n_hypotheses, n_detections, n_input, C_INPUT)
    padded_mask = torch.zeros(shape, dtype=torch.bool)
    padded_mask[:, :n_detections] = token_mask.reshape(n_hypotheses, n_detections, n_input)
    object_mask = torch.zeros(shape[:2], dtype=torch.bool)
    object_mask[:, :n_detections] = True
    padded_rotations = torch.eye(3).repeat(*shape[:2], 1, 1)
    padded_rotations[:, :n_detections] = rotations.reshape(n_hypotheses, n_detections, 3, 3).float()
    batch_size = n_hypotheses * n_chunks
    padded = padded.reshape(batch_size, n_mul, n_input, C_INPUT)
    padded_mask = padded_mask.reshape(batch_size, n_mul, n_input)
    slots = torch.arange(n_mul, dtype=torch.float32).view(1, n_mul, 1)
    padded[..., DETECTION_ID] = torch.where(padded_mask, slots, 0.0)
    return TokenBatch(
        padded, padded_mask, object_mask.reshape(batch_size, n_mul), padded_rotations.reshape(batch_size, n_mul, 3, 3)
    )


def uncollate(values: Tensor, object_mask: Tensor) -> Tensor:
    """Per-object network outputs values (B, M, ...) back to (n_objects, ...) in item order, slot order.

    The inverse of `collate`: the real objects of item 0, then of item 1, and so on.
    """
    if values.shape[:2] != object_mask.shape:
        raise ValueError(f"values {tuple(values.shape)} do not match object_mask {tuple(object_mask.shape)}")
    return values[object_mask]
