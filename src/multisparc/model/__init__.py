"""Multi-SPARC-Net (paper Sec. 3.3): a Perceiver predicting pose updates and correctness logits for up to
n_mul objects of one image jointly, from the sparse tokens of `multisparc.inputs`."""

from multisparc.model.config import ModelConfig
from multisparc.model.network import N_OUT, MultiSparcNet, NetOutput, with_compare_pairs

__all__ = ["N_OUT", "ModelConfig", "MultiSparcNet", "NetOutput", "with_compare_pairs"]
