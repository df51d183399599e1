"""An ill-conditioned quadratic with a known spectrum: the synthetic task where preconditioning
and curvature (edge of stability, sharpness probes) can be checked against exact numbers."""

from __future__ import annotations

import math

import torch

from bench import BenchError
from bench.tasks.base import seeded_generator
from bench.tasks.synthetic import _ROTATION, SyntheticTask


class Quadratic(SyntheticTask):
    """½ (x − x*)ᵀ H (x − x*) with x* = 0, f* = 0 and H = Rᵀ diag(λ) R: eigenvalues λ log-spaced
    from 1 to `condition_number` (assigned to directions in random order) and R a seeded random
    rotation (d terms: ½ λ_j (R x)_j²).

    R is a random permutation of the coordinates followed by independent Haar-random rotations of
    blocks of `rotation_block` coordinates: dense when dim <= rotation_block, and O(dim · block)
    memory and time otherwise (a dense 10,000² rotation would cost 800 MB and ~100x the time).
    What matters is that the eigenvectors are far from the coordinate axes, so that diagonal
    preconditioning (Adam) cannot undo the conditioning: at dim=1024 and condition number 1e3,
    Adam after 400 steps is as far from f* with blocks of 16 as with one dense rotation, while
    without a rotation (blocks of 1) it solves the problem to 1e-13.
    `rotation_seed` fixes the instance; None uses the run seed.

    Start: the box 1 ± 0.5 per coordinate."""

    centre, start_box = 1.0, 0.5

    def __init__(self, dim: int = 100, condition_number: float = 1e3, rotation_block: int = 128,
                 rotation_seed: int | None = None, noise: float = 0.0, start_radius: float | None = None,
                 dtype: str = "float32", *, seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 0):
        if condition_number < 1:
            raise BenchError(f"Quadratic: task.condition_number must be >= 1, got {condition_number!r}")
        if not isinstance(rotation_block, int) or rotation_block < 1:
            raise BenchError(f"Quadratic: task.rotation_block must be a positive integer, got {rotation_block!r}")
        self.condition_number, self.rotation_block = float(condition_number), rotation_block
        self.rotation_seed = seed if rotation_seed is None else rotation_seed
        super().__init__(dim=dim, noise=noise, start_radius=start_radius, dtype=dtype, seed=seed, device=device,
                         batch_size=batch_size)

    def setup(self):
        d, b = self.dim, min(self.rotation_block, self.dim)
        n_blocks = math.ceil(d / b)
        g = seeded_generator(self.rotation_seed, _ROTATION)
        self.perm = torch.randperm(d, generator=g)
        # Haar rotations: QR of Gaussian matrices with R's diagonal signs folded into Q.
        q, r = torch.linalg.qr(torch.randn(n_blocks, b, b, generator=g, dtype=torch.float64))
        blocks = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
        tail = d - (n_blocks - 1) * b
        if tail < b:  # the last block rotates only the `tail` real coordinates; padding stays put
            qt, rt = torch.linalg.qr(torch.randn(tail, tail, generator=g, dtype=torch.float64))
            blocks[-1] = torch.eye(b, dtype=torch.float64)
            blocks[-1, :tail, :tail] = qt * torch.sign(torch.diagonal(rt)).unsqueeze(0)
        exponents = torch.linspace(0, 1, d, dtype=torch.float64)[torch.randperm(d, generator=g)]
        eigenvalues = self.condition_number**exponents
        self._master = (blocks.to(self.device), eigenvalues.to(self.device), self.perm.to(self.device))
        self._by_dtype: dict[torch.dtype, tuple] = {}

    def _state(self, dtype: torch.dtype) -> tuple:
        """(blocks, eigenvalues, permutation) in `dtype`, cast once and kept."""
        if dtype not in self._by_dtype:
            blocks, eigenvalues, perm = self._master
            self._by_dtype[dtype] = (blocks.to(dtype), eigenvalues.to(dtype), perm)
        return self._by_dtype[dtype]

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """R x: permute, pad to whole blocks, rotate each block, drop the padding."""
        blocks, _, perm = self._state(x.dtype)
        n_blocks, b, _ = blocks.shape
        padded = torch.nn.functional.pad(x[perm], (0, n_blocks * b - self.dim))
        # Each block's Q v computed as the row vector vᵀ Qᵀ: CPU bmm is several times faster for a
        # batch of row vectors than for a batch of column vectors (measured at dim=10,000).
        return torch.bmm(padded.view(n_blocks, 1, b), blocks.transpose(1, 2)).reshape(-1)[: self.dim]

    def eigenvalues(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return self._master[1].to(dtype)

    def terms(self, x):
        return 0.5 * self._state(x.dtype)[1] * self.rotate(x) ** 2

    def describe(self):
        return {**super().describe(), "condition_number": self.condition_number,
                "rotation_block": self.rotation_block, "rotation_seed": self.rotation_seed}
