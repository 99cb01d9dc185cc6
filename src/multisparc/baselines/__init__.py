"""Baselines and the named alignment methods of the benchmark tables.

`icp`: a classical depth-only baseline (back-projected depth, extent-based scale, principal-direction
yaw, gravity-constrained ICP). `methods`: the methods `multisparc evaluate` runs by name ("multisparc",
"single", "2d-score", "initial", "icp"), each returning an `AlignmentResult`.

Place in the layers: this package imports `inference` (initialisations, the Aligner, the result type);
only `benchmarks` and the command line import it.
"""

from multisparc.baselines.icp import IcpAligner
from multisparc.baselines.methods import METHODS, MethodSpec, make_method, method_spec
from multisparc.inference.depth_fit import IcpConfig, detection_points, principal_yaw_offset
from multisparc.inference.verification import fit_score

__all__ = [
    "METHODS",
    "IcpAligner",
    "IcpConfig",
    "MethodSpec",
    "detection_points",
    "fit_score",
    "make_method",
    "method_spec",
    "principal_yaw_offset",
]
