"""Scion (Pethick et al. 2025, "Training Deep Learning Models with Norm-Constrained LMOs"): momentum
d = (1 - a) d + a g, then a step along the linear minimisation oracle of a norm chosen per layer,

    p = p (1 - lr wd) - lr rho lmo(d)          (unconstrained, uSCG)
    p = (1 - lr) p - lr rho lmo(d)             (constrained, SCG: p stays in the rho-ball)

with the paper's operator norms for a transformer: hidden matrices the spectral norm scaled by
sqrt(d_out / d_in) (lmo = U V^T sqrt(d_out / d_in), Newton-Schulz as in Muon), embeddings the column
norm (each token's vector to unit RMS), output heads the sign (sign(d) / d_in), vectors RMS, conv
kernels the spectral norm of their unfolding. The update is pytorch-optimizer's SCION (whose
orthogonaliser, like torch's Muon, runs Newton-Schulz in bfloat16); this class assigns each parameter
its norm and radius from its name (param_partition), as the paper's reference code does by module.
"""

from __future__ import annotations

import pytorch_optimizer
from pytorch_optimizer.optimizer.scion import LMONorm

EMBED_NAMES = ("embed", "wte", "wpe")
HEAD_NAMES = ("lm_head", "head", "output", "classifier")


def norm_of(name: str, dim: int) -> tuple[int, dict, str]:
    """(LMONorm, its options, which radius) for a parameter."""
    if dim < 2:
        return LMONorm.BIAS, {}, "radius"
    if dim > 2:
        return LMONorm.SPECTRALCONV, {}, "radius"
    if any(word in name for word in EMBED_NAMES):
        return LMONorm.COL, {"transpose": True}, "radius"  # an Embedding's weight is (vocab, dim)
    if any(word in name for word in HEAD_NAMES):
        return LMONorm.SIGN, {}, "output_radius"
    return LMONorm.SPECTRAL, {}, "radius"


class Scion(pytorch_optimizer.SCION):
    param_partition = True
    implementation = "loop"

    def __init__(self, named_params, lr: float = 2.0**-12, momentum: float = 0.1, radius: float = 50.0,
                 output_radius: float = 3000.0, constraint: bool = False, weight_decay: float = 0.0):
        radii = {"radius": radius, "output_radius": output_radius}
        groups: dict[tuple, dict] = {}
        for item in named_params:
            name, p = item if isinstance(item, tuple) else ("", item)
            norm, options, which = norm_of(name, p.dim())
            key = (int(norm), tuple(sorted(options.items())), which)
            groups.setdefault(key, {"params": [], "norm_type": int(norm), "norm_kwargs": options,
                                    "scale": radii[which]})["params"].append(p)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        super().__init__(list(groups.values()), lr=lr, momentum=momentum, constraint=constraint,
                         weight_decay=weight_decay, foreach=False)
