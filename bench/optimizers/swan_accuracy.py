"""How close SWAN's Newton-Schulz whitening gets to exact whitening, and what it costs.

    python -m bench.optimizers.swan_accuracy            # the three shapes, old and new settings
    python -m bench.optimizers.swan_accuracy --quick    # 64x128 and 128x64 only (seconds)

Gradient-like matrices: G = D^T X / b over b = 4 max(m, n) samples, with X's feature variances
falling as 1/i (the power-law spectra of layer inputs) and D Gaussian; after GradNorm a 1024x1024
one has singular values from ~340 down to ~0.004. Error = ||W - U V^T||_F / ||U V^T||_F in float32
without the final rescale, against U V^T from a float64 SVD (singular values above 1e-7 of the
largest). Time: median of 3 float32 calls on this machine's CPU threads.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.optimizers.swan import polar_newton_schulz


def gradient_like(m: int, n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    b = 4 * max(m, n)
    x = torch.randn(b, n, generator=gen, dtype=torch.float64) * torch.arange(1, n + 1, dtype=torch.float64) ** -0.5
    d = torch.randn(b, m, generator=gen, dtype=torch.float64)
    return (d.T @ x / b).float()


def grad_norm(g: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return (g - g.mean(dim=1, keepdim=True)) / (g.std(dim=1, correction=0, keepdim=True) + eps)


def exact_whitening(g: torch.Tensor) -> torch.Tensor:
    u, s, vh = torch.linalg.svd(g.double(), full_matrices=False)
    keep = s > 1e-7 * s[0]
    return u[:, keep] @ vh[keep]


def coupled_inverse_sqrt(g: torch.Tensor, steps: int) -> torch.Tensor:
    """The whitening before ns_tol (kept here only to measure it): the coupled Newton-Schulz iteration
    for A^(-1/2) on the smaller gram A = G G^T (or G^T G + tr/n 1 1^T/n), fixed `steps`."""
    wide = g.shape[0] < g.shape[1]
    a = g @ g.T if wide else g.T @ g
    n = a.shape[0]
    if not wide:
        a = a + (a.trace() / n) * torch.full((n, n), 1.0 / n, dtype=g.dtype)
    scale = torch.linalg.matrix_norm(a)
    eye = torch.eye(n, dtype=g.dtype)
    y, z = a / scale, eye
    for _ in range(steps):
        t = 0.5 * (3 * eye - z @ y)
        y, z = y @ t, t @ z
    z = z / scale.sqrt()
    return z @ g if wide else g @ z


def measure(shape: tuple[int, int], method, repeats: int = 3) -> tuple[float, float, int]:
    g = grad_norm(gradient_like(*shape))
    exact = exact_whitening(g)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        w, steps = method(g)
        times.append(time.perf_counter() - start)
    error = (torch.linalg.matrix_norm(w.double() - exact) / torch.linalg.matrix_norm(exact)).item()
    return error, statistics.median(times), steps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes only")
    args = parser.parse_args(argv)
    shapes = [(64, 128), (128, 64)] if args.quick else [(256, 512), (512, 256), (1024, 1024)]
    methods = {
        "old: coupled A^(-1/2), 10 steps": lambda g: (coupled_inverse_sqrt(g, 10), 10),
        "coupled A^(-1/2), 40 steps": lambda g: (coupled_inverse_sqrt(g, 40), 40),
        "polar, 40 steps": lambda g: polar_newton_schulz(g, 40, 0.0),
        "new: polar, ns_tol 1e-4 (ns_steps 60)": lambda g: polar_newton_schulz(g, 60, 1e-4),
    }
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"{'shape':>10}  {'setting':<40} {'steps':>5} {'error':>9} {'time ms':>8}")
    for shape in shapes:
        for label, method in methods.items():
            error, seconds, steps = measure(shape, method)
            print(f"{shape[0]:>4}x{shape[1]:<5}  {label:<40} {steps:>5} {error:>9.2e} {seconds * 1e3:>8.1f}")


if __name__ == "__main__":
    main()
