"""Hyper-parameters of Multi-SPARC-Net (paper Sec. 3.3, Tab. 1 ablations, Supp. C).

`ModelConfig()` has the paper's sizes and `ModelConfig.paper()` is the paper's network; `ModelConfig.cpu()`
is a small variant that trains and runs on a laptop CPU. `to_dict` / `from_dict` store the config next to the weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from multisparc.config_checks import require_bools, require_choice, require_ints
from multisparc.inputs import C_INPUT

MODES = ("multi", "single")
#: Token embeddings (`multisparc.model.embedding`): "linear" is the paper's (the 13 token channels fed
#: to the cross-attention through one linear map), "relative" places every token relative to its
#: object's hypothesis (a departure from the paper, the default of the shipped networks).
EMBEDDINGS = ("relative", "linear")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and variants of the network.

    n_latent, c_latent: latents per object slot and their width (N_latent, C_latent).
    n_blocks: repeats of (cross-attention, n_self_attn self-attention layers).
    n_heads, cross_heads, dim_head: heads of the self- and cross-attention and the width of one head.
    mlp_ratio: hidden width of every MLP as a multiple of its input width.
    c_input: channels of a token (the 13 of `multisparc.inputs`); n_mul: object slots M of one item.
    mode: "multi" = self-attention over the latents of all objects of an item (Multi-SPARC);
        "single" = each object attends only to its own latents (SPARC-style, Tab. 1 "single-object").
    joint_encoding: one cross-attention from all objects' tokens to all latents (Tab. 1 row 2).
    joint_decoding: the mean over all latents mapped by one MLP to n_mul * 11 outputs (Tab. 1 row 1).
    share_block_weights: blocks 2..n_blocks share one set of weights (Perceiver's weight tying); the
        first block keeps its own, as Perceiver found tying the first cross-attention unstable.
    dropout: on attention weights and MLP hidden activations, in training only.
    compare_pairs: 0 (the paper), or the inputs' n_cad: the embedding then compares each reprojected
        token with its CAD token and adds the normals' azimuth harmonics about the hypothesis' up axis
        (`multisparc.model.embedding.pair_features`); needs the relative embedding.
    embedding: "relative" (tokens placed relative to the object's hypothesis; the default, so that
        model files written before the switch existed keep their meaning) or "linear" (the paper's).
    """

    n_latent: int = 80
    c_latent: int = 256
    n_blocks: int = 3
    n_self_attn: int = 2
    n_heads: int = 8
    cross_heads: int = 1
    dim_head: int = 64
    mlp_ratio: int = 4
    c_input: int = C_INPUT
    n_mul: int = 5
    mode: Literal["multi", "single"] = "multi"
    joint_encoding: bool = False
    joint_decoding: bool = False
    share_block_weights: bool = False
    dropout: float = 0.0
    compare_pairs: int = 0
    embedding: Literal["relative", "linear"] = "relative"

    def __post_init__(self) -> None:
        prefix = "ModelConfig."
        positive = ("n_latent", "c_latent", "n_blocks", "n_heads", "cross_heads", "dim_head", "mlp_ratio", "n_mul")
        require_ints(self, positive, 1, prefix)
        require_ints(self, ("n_self_attn", "compare_pairs"), 0, prefix)
        if self.c_input != C_INPUT:
            raise ValueError(
                f"ModelConfig.c_input must be {C_INPUT} (the token layout of multisparc.inputs), got {self.c_input!r}"
            )
        require_choice(self, "mode", MODES, prefix)
        require_bools(self, ("joint_encoding", "joint_decoding", "share_block_weights"), prefix)
        require_choice(self, "embedding", EMBEDDINGS, prefix)
        if self.compare_pairs and self.embedding != "relative":
            raise ValueError("ModelConfig.compare_pairs needs the relative embedding (embedding: relative)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must lie in [0, 1), got {self.dropout!r}")

    @property
    def uses_slot_identity(self) -> bool:
        """Whether the network needs to know which slot a token or latent belongs to (module docstring
        of `multisparc.model.network`): only the joint-encoding and joint-decoding ablations do."""
        return self.joint_encoding or self.joint_decoding

    @classmethod
    def paper(cls) -> ModelConfig:
        """The paper's network: 80 latents of 256 channels per object, 3 blocks, N_mul = 5, the token
        channels embedded linearly."""
        return cls(embedding="linear")

    @classmethod
    def cpu(cls) -> ModelConfig:
        """A small network for CPU training and tests: 0.27 M parameters, about 10 ms for 4 x 5 objects of
        900 tokens on two CPU cores."""
        return cls(n_latent=16, c_latent=64, n_heads=4, cross_heads=1, dim_head=16, mlp_ratio=2)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (for checkpoints and YAML)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`. Missing keys take their defaults; unknown keys raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"a model config must be a dict, got {type(data).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)
