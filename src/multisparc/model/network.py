"""Multi-SPARC-Net (paper Sec. 3.3): a Perceiver that predicts pose updates for M objects jointly.

Input of one forward pass, B items of M = n_mul object slots each (one item = one image chunk under one
pose hypothesis; hypotheses never share an item, so they never attend to each other):
tokens (B, M, N_input, 13) as built by `multisparc.inputs`, object_mask (B, M) bool (True = real object)
and optionally token_mask (B, M, N_input) bool (True = valid token) and rotations (B, M, 3, 3), the
camera-from-object rotations of the hypotheses the tokens were made under (None: the identity).

Token embedding (`multisparc.model.embedding`): every token with a depth becomes a 3D point relative to
the object's current hypothesis (centre and size read from its own CAD tokens), in camera axes and in
the hypothesis' own axes (its rotation, the optional `rotations` input that `TokenBatch` carries), with
Fourier features, next to the rgb, normal, mask and bearing channels; the token type (box, reprojected,
CAD) enters through a learned embedding of its 3 values. With `compare_pairs` (not in the paper) each CAD
point is also compared with the pixel it reprojects onto (`multisparc.model.embedding.pair_features`).
The paper's embedding (`embedding: linear`) is one linear map of the 13 channels as they are.

Slot identity: the detection_id channel equals the slot m (`multisparc.inputs.collate` writes it), and
the relative embedding takes the slot from the object's position along M instead, never feeding ids as
numbers (the paper's linear embedding feeds the id as the number it is, so there outputs follow the slot
order).
With separate encoding and decoding (the paper's network) slot identity is not used at all: every
object's tokens reach only its own latents and every output is decoded from its own latents, so
permuting the objects of an item permutes the outputs and nothing else. The two ablations that mix
objects need it: with `joint_encoding` one cross-attention reads all tokens into all latents, and with
`joint_decoding` one MLP maps the mean of all latents to all M outputs; there a learned slot embedding is
added to every token and latent of slot m, and outputs depend on the slot order (as in the paper).

Blocks, repeated n_blocks times: cross-attention from each object's tokens into its own N_latent latents
(one shared layer for all objects), then n_self_attn self-attention layers over the M * N_latent latents
of the item with padded objects masked out as keys ("multi"), or within each object's own latents
("single": the block-diagonal attention, computed as M separate attentions). Decoding: the mean over each
object's latents, then an MLP to 11 outputs `[d_raw, dphi, dtheta, q_raw (4), s_raw (3), logit]`. The
last layer starts at zero, so the initial update is exactly the identity of
`multisparc.geometry.apply_update` and the initial logit 0.

Padding: padded objects and invalid tokens are zeroed before the embedding, masked out as keys
everywhere and left out of every mean, so they cannot change the outputs of real objects; the outputs of
padded slots are zero.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from multisparc.geometry import UPDATE_SIZE
from multisparc.model.blocks import CrossAttentionBlock, MeanDecoder, SelfAttentionLayer
from multisparc.model.config import ModelConfig
from multisparc.model.embedding import N_FEATURES, N_PAIR_FEATURES, LinearTokenEmbedding, TokenEmbedding

#: Outputs per object: the pose update and the correctness logit.
N_OUT = UPDATE_SIZE + 1


class NetOutput(NamedTuple):
    """update (B, M, 10) `[d_raw, dphi, dtheta, q_raw (4), s_raw (3)]` for `geometry.apply_update`;
    logit (B, M) of the pose being correct (20 cm, 20 deg, 20 %). Zero in padded slots."""

    update: Tensor
    logit: Tensor


class MultiSparcNet(nn.Module):
    """The network of the module docstring; `ModelConfig` picks sizes and the ablation variants."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        n_slots = config.n_mul if config.uses_slot_identity else None
        c = config.c_latent
        self.embedding = (
            TokenEmbedding(c, n_slots, config.compare_pairs)
            if config.embedding == "relative"
            else LinearTokenEmbedding(c)
        )
        self.latents = nn.Parameter(0.02 * torch.randn(config.n_latent, c))
        self.latent_slots = nn.Parameter(0.02 * torch.randn(config.n_mul, c)) if n_slots is not None else None
        # With shared weights, blocks 2..n use one set of modules: the schedule names the set per block.
        n_sets = min(config.n_blocks, 2) if config.share_block_weights else config.n_blocks
        self.block_schedule = [min(i, n_sets - 1) for i in range(config.n_blocks)]
        self.cross_blocks = nn.ModuleList(
            CrossAttentionBlock(c, c, config.cross_heads, config.dim_head, config.mlp_ratio, config.dropout)
            for _ in range(n_sets)
        )
        self.self_blocks = nn.ModuleList(
            nn.ModuleList(
                SelfAttentionLayer(c, config.n_heads, config.dim_head, config.mlp_ratio, config.dropout)
                for _ in range(config.n_self_attn)
            )
            for _ in range(n_sets)
        )
        n_out = config.n_mul * N_OUT if config.joint_decoding else N_OUT
        self.decoder = MeanDecoder(c, n_out, config.mlp_ratio)

    def count_parameters(self) -> int:
        """Number of trainable parameters (shared weights counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check_inputs(self, tokens: Tensor, object_mask: Tensor, token_mask: Tensor | None) -> None:
        if tokens.dim() != 4 or tokens.shape[-1] != self.config.c_input:
            raise ValueError(
                f"tokens must have shape (B, M, N_input, {self.config.c_input}), got {tuple(tokens.shape)}"
            )
        if not tokens.is_floating_point():
            raise ValueError(f"tokens must be floating point, got {tokens.dtype}")
        if object_mask.shape != tokens.shape[:2] or object_mask.dtype != torch.bool:
            raise ValueError(
                f"object_mask must be bool of shape {tuple(tokens.shape[:2])}, "
                f"got {object_mask.dtype} {tuple(object_mask.shape)}"
            )
        if token_mask is not None and (token_mask.shape != tokens.shape[:3] or token_mask.dtype != torch.bool):
            raise ValueError(
                f"token_mask must be bool of shape {tuple(tokens.shape[:3])}, "
                f"got {token_mask.dtype} {tuple(token_mask.shape)}"
            )
        if self.config.uses_slot_identity and tokens.shape[1] > self.config.n_mul:
            raise ValueError(
                f"{tokens.shape[1]} object slots, but this joint-encoding/decoding network has n_mul = "
                f"{self.config.n_mul} (split detections with multisparc.inputs.chunk_indices)"
            )

    def forward(
        self, tokens: Tensor, object_mask: Tensor, token_mask: Tensor | None = None, rotations: Tensor | None = None
    ) -> NetOutput:
        """tokens (B, M, N_input, 13), object_mask (B, M) bool, token_mask (B, M, N_input) bool or None
        (all valid), rotations (B, M, 3, 3) camera-from-object rotations of the hypotheses the tokens
        were made under, or None (identity: object axes = camera axes) -> NetOutput(update (B, M, 10),
        logit (B, M)). See the module docstring; `TokenBatch` carries all four inputs."""
        self._check_inputs(tokens, object_mask, token_mask)
        if rotations is not None and rotations.shape != (*tokens.shape[:2], 3, 3):
            raise ValueError(f"rotations must have shape {(*tokens.shape[:2], 3, 3)}, got {tuple(rotations.shape)}")
        config = self.config
        n_objects = tokens.shape[1]
        valid = object_mask[..., None].expand(tokens.shape[:3])
        if token_mask is not None:
            valid = valid & token_mask
        # Zeroing (not only masking) keeps NaN or inf in ignored tokens out of the weighted sums.
        tokens = torch.where(valid[..., None], tokens, 0.0)
        context = self.embedding(tokens, valid, rotations)
        if config.joint_encoding:
            context, context_mask = rearrange(context, "b m n d -> b (m n) d"), rearrange(valid, "b m n -> b (m n)")
        else:
            context, context_mask = rearrange(context, "b m n d -> (b m) n d"), rearrange(valid, "b m n -> (b m) n")

        latents = repeat(self.latents, "l c -> b m l c", b=tokens.shape[0], m=n_objects)
        if self.latent_slots is not None:
            latents = latents + self.latent_slots[:n_objects, None]
        latents = rearrange(latents, "b m l c -> b (m l) c")
        latent_mask = repeat(object_mask, "b m -> b (m l)", l=config.n_latent)

        for index in self.block_schedule:
            latents = self._cross_attend(self.cross_blocks[index], latents, context, context_mask, n_objects)
            for layer in self.self_blocks[index]:
                latents = self._self_attend(layer, latents, latent_mask, n_objects)

        if config.joint_decoding:
            outputs = self.decoder(latents, latent_mask)
            outputs = rearrange(outputs, "b (m k) -> b m k", k=N_OUT)[:, :n_objects]
        else:
            outputs = self.decoder(rearrange(latents, "b (m l) c -> b m l c", m=n_objects))
        outputs = torch.where(object_mask[..., None], outputs, 0.0)
        return NetOutput(update=outputs[..., :UPDATE_SIZE], logit=outputs[..., UPDATE_SIZE])

    def _cross_attend(
        self, block: CrossAttentionBlock, latents: Tensor, context: Tensor, context_mask: Tensor, n_objects: int
    ) -> Tensor:
        """latents (B, M * L, C): all at once (joint encoding) or each object's L from its own tokens."""
        if self.config.joint_encoding:
            return block(latents, context, context_mask)
        per_object = rearrange(latents, "b (m l) c -> (b m) l c", m=n_objects)
        return rearrange(block(per_object, context, context_mask), "(b m) l c -> b (m l) c", m=n_objects)

    def _self_attend(self, layer: SelfAttentionLayer, latents: Tensor, latent_mask: Tensor, n_objects: int) -> Tensor:
        """latents (B, M * L, C): over the whole item without padded keys (multi), or per object (single)."""
        if self.config.mode == "multi":
            return layer(latents, latent_mask)
        per_object = rearrange(latents, "b (m l) c -> (b m) l c", m=n_objects)
        return rearrange(layer(per_object), "(b m) l c -> b (m l) c", m=n_objects)

    def flops_per_forward(self, batch: int, n_input: int) -> int:
        """Multiply-accumulate FLOPs (2 per multiply-add) of all matrix products of one forward pass of
        `batch` items of M = n_mul objects with n_input tokens each: linear layers, attention scores and
        attention-weighted sums. Norms, softmax, activations and the embedding lookup are left out."""
        config = self.config
        m, n_lat, c = config.n_mul, config.n_latent, config.c_latent
        n_tokens, n_latents = batch * m * n_input, batch * m * n_lat
        hidden = c * config.mlp_ratio

        def linear(rows: int, d_in: int, d_out: int) -> int:
            return 2 * rows * d_in * d_out

        def mlp(rows: int) -> int:
            return linear(rows, c, hidden) + linear(rows, hidden, c)

        # Keys per query: cross-attention reads an object's tokens (all of the item's when joint);
        # self-attention reads the item's latents (the object's own in single mode).
        cross_keys = m * n_input if config.joint_encoding else n_input
        self_keys = m * n_lat if config.mode == "multi" else n_lat
        cross_inner = config.cross_heads * config.dim_head
        self_inner = config.n_heads * config.dim_head
        cross = (
            linear(n_latents, c, cross_inner)
            + linear(n_tokens, c, 2 * cross_inner)
            + 2 * linear(n_latents, cross_keys, cross_inner)
            + linear(n_latents, cross_inner, c)
            + mlp(n_latents)
        )
        self_layer = (
            linear(n_latents, c, 3 * self_inner)
            + 2 * linear(n_latents, self_keys, self_inner)
            + linear(n_latents, self_inner, c)
            + mlp(n_latents)
        )
        # The embedding turns 3 vectors of every token into the hypothesis' axes; comparing pairs turns
        # every normal again (for its azimuth) and the normal residual of every pair; then it maps the
        # features.
        compared = config.compare_pairs > 0
        embedding = linear(n_tokens, self.embedding.features.in_features, c)
        if config.embedding == "relative":
            pairs = batch * m * config.compare_pairs
            embedding += (4 if compared else 3) * linear(n_tokens, 3, 3) + linear(pairs, 3, 3)
        n_decoded = batch if config.joint_decoding else batch * m
        decoder = linear(n_decoded, c, hidden) + linear(n_decoded, hidden, self.decoder.out.out_features)
        return embedding + config.n_blocks * (cross + config.n_self_attn * self_layer) + decoder


def with_compare_pairs(state_dict: dict[str, Tensor], n_pairs: int) -> dict[str, Tensor]:
    """The state dict of a network with compare_pairs = 0, grown to load into the same network with
    compare_pairs = n_pairs: the embedding's linear layer gets zero weights for the appended pair
    features, so the grown network computes exactly what the given one did until training moves them."""
    key = "embedding.features.weight"
    weight = state_dict[key]
    if weight.shape[1] != N_FEATURES:
        raise ValueError(f"{key} has {weight.shape[1]} input features, expected {N_FEATURES} (no compared pairs)")
    grown = dict(state_dict)
    grown[key] = torch.cat([weight, weight.new_zeros(weight.shape[0], N_PAIR_FEATURES if n_pairs else 0)], dim=1)
    return grown
