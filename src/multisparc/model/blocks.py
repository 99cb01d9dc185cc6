"""Small pre-LayerNorm transformer pieces of Multi-SPARC-Net, in the style of perceiver-pytorch.

Every attention takes an optional key mask (batch, n_keys) bool, True = the key takes part. A query with
no valid key at all (an object whose tokens are all invalid, a fully padded item) gets a zero attention
output, so the residual stream passes through unchanged and stays finite.
"""

from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class FeedForward(nn.Module):
    """Pre-LayerNorm GELU MLP, x (..., dim) -> (..., dim); the residual is added by the caller."""

    def __init__(self, dim: int, mlp_ratio: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, dim * mlp_ratio),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(dim * mlp_ratio, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Pre-LayerNorm multi-head attention of queries x (batch, n_q, query_dim) into a context
    (batch, n_k, context_dim) (self-attention when context is None) -> (batch, n_q, query_dim)."""

    def __init__(
        self, query_dim: int, context_dim: int | None, heads: int, dim_head: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.dropout = dropout
        self.norm = nn.LayerNorm(query_dim)
        self.norm_context = nn.LayerNorm(context_dim) if context_dim is not None else None
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim or query_dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, query_dim)

    def forward(self, x: Tensor, context: Tensor | None = None, key_mask: Tensor | None = None) -> Tensor:
        """key_mask (batch, n_k) bool, True = valid key; see the module docstring for queries without one."""
        x = self.norm(x)
        if self.norm_context is None:
            if context is not None:
                raise ValueError("a self-attention layer takes no context")
            context = x
        else:
            if context is None:
                raise ValueError("a cross-attention layer needs a context")
            context = self.norm_context(context)
        q = self.to_q(x)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        attn_mask, has_key = None, None
        if key_mask is not None:
            has_key = key_mask.any(dim=-1)
            # Rows without any valid key would softmax over nothing (NaN): let them see every key and
            # zero their result below.
            attn_mask = rearrange(key_mask | ~has_key[:, None], "b k -> b 1 1 k")
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        out = self.to_out(rearrange(out, "b h n d -> b n (h d)"))
        if has_key is not None:
            out = out * has_key[:, None, None].to(out.dtype)
        return out


class CrossAttentionBlock(nn.Module):
    """Latents (batch, n_latent, c_latent) read a token context (batch, n_tokens, c_context):
    residual cross-attention, then a residual MLP."""

    def __init__(self, c_latent: int, c_context: int, heads: int, dim_head: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.attention = Attention(c_latent, c_context, heads, dim_head, dropout)
        self.mlp = FeedForward(c_latent, mlp_ratio, dropout)

    def forward(self, latents: Tensor, context: Tensor, key_mask: Tensor | None) -> Tensor:
        latents = latents + self.attention(latents, context, key_mask)
        return latents + self.mlp(latents)


class SelfAttentionLayer(nn.Module):
    """A pre-LayerNorm transformer layer on x (batch, n, dim): residual self-attention, residual MLP."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.attention = Attention(dim, None, heads, dim_head, dropout)
        self.mlp = FeedForward(dim, mlp_ratio, dropout)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        x = x + self.attention(x, key_mask=key_mask)
        return x + self.mlp(x)


class MeanDecoder(nn.Module):
    """Mean over the latents -> LayerNorm -> GELU MLP -> n_out values; the last layer starts at zero.

    latents (..., n, dim) and weights (..., n) (1 = take part, 0 = ignore; all-zero rows give a zero
    mean) -> (..., n_out). Zero initial weights and bias make the first outputs exactly zero.
    """

    def __init__(self, dim: int, n_out: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.hidden = nn.Linear(dim, dim * mlp_ratio)
        self.out = nn.Linear(dim * mlp_ratio, n_out)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, latents: Tensor, weights: Tensor | None = None) -> Tensor:
        if weights is None:
            pooled = latents.mean(dim=-2)
        else:
            weights = weights.to(latents.dtype)
            pooled = (latents * weights[..., None]).sum(-2) / weights.sum(-1, keepdim=True).clamp(min=1.0)
        return self.out(F.gelu(self.hidden(self.norm(pooled))))
