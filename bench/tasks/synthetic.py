"""Synthetic test functions with a known minimum f*, as optimization tasks.

The model is a single point x ∈ R^dim held as a parameter (`model().x`); the loss is f(x) and
`evaluate` reports `val/loss` = `train/loss` = f(x) and `train/subopt` = f(x) − f*, computed in
float64 so that a target like `train/subopt <= 1e-6` measures the optimizer, not rounding.

Every function takes the same options (see `SyntheticTask.__init__`):

- `dim`: 2 to 10,000 (or more); everything is vectorised over coordinates.
- start point: `centre + start_radius · U(-1, 1)^dim`, seeded by the run seed. The centre is the
  function's standard start and the default radius its standard search box (documented per class).
- `noise: σ`: the optimizer sees ∇f + σ·ξ with ξ ~ N(0, I) drawn afresh (seeded) each step;
  `evaluate` still sees the true f.
- `batch_size: b` (functions that are sums of m terms): each step uses b terms sampled without
  replacement, scaled by m/b so the loss and its gradient are unbiased; 0 means all terms.

Both kinds of noise are drawn from a generator seeded by (seed, step), so `batches(start)` costs
nothing to skip ahead and a resumed run sees the same draws as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import torch
from torch import nn

from bench import BenchError
from bench.tasks.base import Task, seeded_generator

# Salts keep the start point, the per-step draws and the quadratic's rotation (quadratic.py)
# independent streams.
_START, _DRAW, _ROTATION = 11, 12, 13
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class Point(nn.Module):
    """The optimization variable: one vector parameter `x`."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.x = nn.Parameter(x)

    def forward(self) -> torch.Tensor:
        return self.x


class Draw(NamedTuple):
    """One step's randomness: the gradient noise ξ (or None) and the sampled term indices (or None)."""

    noise: torch.Tensor | None
    terms: torch.Tensor | None


class SyntheticTask(Task):
    """Base class: a subclass defines `terms(x)` (for sums) or `value(x)`, and `minimizer()`.

    `optimum` defaults to 0 (true of most test functions); a subclass with another f* overrides
    `known_optimum`. The tests check f(minimizer) == optimum and ∇f(minimizer) == 0 for each.
    """

    metric = "train/subopt"
    mode = "min"
    #: the standard start (a number, or a per-coordinate pattern repeated to `dim`)
    centre: float | tuple[float, ...] = 0.0
    #: half-width of the default start box around `centre`
    start_box: float = 1.0
    #: whether f is a sum of terms, so that `batch_size` can sample them
    sum_of_terms: bool = True

    def __init__(self, dim: int = 2, noise: float = 0.0, start_radius: float | None = None, dtype: str = "float32",
                 *, seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 0):
        super().__init__(seed=seed, device=device, batch_size=batch_size)
        name = type(self).__name__
        if not isinstance(dim, int) or dim < 2:
            raise BenchError(f"{name}: task.dim must be an integer >= 2, got {dim!r}")
        if noise < 0:
            raise BenchError(f"{name}: task.noise must be >= 0 (the gradient noise σ), got {noise!r}")
        if start_radius is not None and start_radius < 0:
            raise BenchError(f"{name}: task.start_radius must be >= 0 (null: the default box), got {start_radius!r}")
        if dtype not in DTYPES:
            raise BenchError(f"{name}: unknown task.dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
        if batch_size > 0 and not self.sum_of_terms:
            raise BenchError(f"{name} is not a sum of terms, so it has no minibatch noise; use batch_size=0 "
                             f"(task.noise=σ adds gradient noise instead)")
        self.dim, self.noise, self.dtype = dim, float(noise), DTYPES[dtype]
        self.start_radius = self.start_box if start_radius is None else float(start_radius)
        self.setup()
        self.optimum = self.known_optimum()
        self.n_terms = len(self.terms(self.minimizer())) if self.sum_of_terms else 1
        # Sampling all terms (or more) is the full sum: no sampling noise, nothing to draw.
        self.sample = batch_size if 0 < batch_size < self.n_terms else 0

    # --- what a function defines -----------------------------------------------------------------
    def setup(self) -> None:
        """Build per-instance state (e.g. the quadratic's rotation); called once by __init__."""

    def terms(self, x: torch.Tensor) -> torch.Tensor:
        """The m terms whose sum is f(x), as a vector (only for `sum_of_terms` functions)."""
        raise NotImplementedError

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) as a scalar tensor, in x's dtype."""
        return self.terms(x).sum()

    def minimizer(self) -> torch.Tensor:
        """A global minimiser x*, float64 on `self.device`."""
        return self.full(0.0)

    def known_optimum(self) -> float:
        return 0.0

    # --- helpers ---------------------------------------------------------------------------------
    def full(self, value: float) -> torch.Tensor:
        return torch.full((self.dim,), value, dtype=torch.float64, device=self.device)

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """1, 2, ..., dim in x's dtype and device (weights of the form i or √i)."""
        return torch.arange(1, self.dim + 1, dtype=x.dtype, device=x.device)

    def start(self) -> torch.Tensor:
        """The seeded start point, float64: centre + start_radius · U(-1, 1)^dim."""
        centre = torch.tensor(self.centre, dtype=torch.float64).flatten()
        centre = centre.repeat(math.ceil(self.dim / len(centre)))[: self.dim]
        u = torch.rand(self.dim, generator=seeded_generator(self.seed, _START), dtype=torch.float64)
        return (centre + self.start_radius * (2 * u - 1)).to(self.device)

    # --- the Task contract -----------------------------------------------------------------------
    def model(self) -> nn.Module:
        return Point(self.start().to(self.dtype))

    def batches(self, start: int = 0) -> Iterator[Draw]:
        step = start
        while True:
            if not self.noise and not self.sample:
                yield Draw(None, None)
            else:
                g = seeded_generator(self.seed, _DRAW, step)
                noise = torch.randn(self.dim, generator=g, dtype=self.dtype).to(self.device) if self.noise else None
                terms = torch.randperm(self.n_terms, generator=g)[: self.sample].to(self.device) if self.sample else None
                yield Draw(noise, terms)
            step += 1

    def loss(self, model: nn.Module, batch: Draw) -> torch.Tensor:
        x = model.x
        # These tasks measure convergence to 1e-6 and below, which bf16 autocast cannot represent.
        with torch.autocast(x.device.type, enabled=False):
            if batch.terms is None:
                f = self.value(x)
            else:
                f = self.terms(x)[batch.terms].sum() * (self.n_terms / len(batch.terms))
            if batch.noise is not None:
                # Adds zero to the value and σ·ξ to the gradient: the optimizer sees noisy
                # gradients while the logged loss stays f (or its sampled estimate).
                f = f + self.noise * torch.dot(batch.noise, x - x.detach())
        return f

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        f = self.value(model.x.detach().double()).item()
        subopt = f - self.optimum
        # A difference below float64 rounding of f* is zero, not a (meaningless) negative number.
        if -1e-12 * max(1.0, abs(self.optimum)) < subopt < 0:
            subopt = 0.0
        return {"train/loss": f, "val/loss": f, "train/subopt": subopt}

    def items_per_batch(self, batch: Draw) -> int:
        return 1  # one (possibly noisy) evaluation of f per step

    def describe(self) -> dict:
        return {"function": type(self).__name__, "dim": self.dim, "optimum": self.optimum, "noise": self.noise,
                "terms": self.n_terms, "sampled_terms": self.sample or self.n_terms,
                "start": {"centre": self.centre, "radius": self.start_radius}}


class Rosenbrock(SyntheticTask):
    """Σ_{i<d} 100 (x_{i+1} − x_i²)² + (1 − x_i)²; x* = (1, ..., 1), f* = 0 (d−1 terms).

    Start: the classic (−1.2, 1, −1.2, 1, ...) ± 0.2."""

    centre, start_box = (-1.2, 1.0), 0.2

    def terms(self, x):
        return 100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2

    def minimizer(self):
        return self.full(1.0)


class Rastrigin(SyntheticTask):
    """10 d + Σ x_i² − 10 cos(2π x_i); x* = 0, f* = 0; a local minimum near every integer point.

    Start: the standard box [−5.12, 5.12]^d."""

    start_box = 5.12

    def terms(self, x):
        return x**2 - 10 * torch.cos(2 * math.pi * x) + 10


class Ackley(SyntheticTask):
    """−20 exp(−0.2 √(mean x²)) − exp(mean cos 2πx) + 20 + e; x* = 0, f* = 0; not a sum of terms,
    and not differentiable at x* (a cone), so converging there needs a decaying step size.

    Start: the standard box [−32.768, 32.768]^d."""

    start_box, sum_of_terms = 32.768, False

    def value(self, x):
        # The norm's gradient at 0 is defined as 0 (a subgradient), where √(mean x²)'s is NaN;
        # the grouping (20 − 20 e^…) + (e − e^…) cancels exactly at x*.
        r = torch.linalg.vector_norm(x) / math.sqrt(self.dim)
        return (20 - 20 * torch.exp(-0.2 * r)) + (math.e - torch.exp(torch.cos(2 * math.pi * x).mean()))


class StyblinskiTang(SyntheticTask):
    """½ Σ x_i⁴ − 16 x_i² + 5 x_i; x*_i = −2.9035..., f* = −39.1661657... · d; one local minimum
    per coordinate at +2.7468, so a start in the positive half-space per coordinate is a trap.

    Start: the standard box [−5, 5]^d."""

    start_box = 5.0

    def terms(self, x):
        return 0.5 * (x**4 - 16 * x**2 + 5 * x)

    @staticmethod
    def root() -> float:
        # The global minimiser solves 2x³ − 16x + 2.5 = 0, i.e. x³ − 8x + 1.25 = 0: the smallest
        # of its three real roots, by the trigonometric formula for depressed cubics.
        p, q = -8.0, 1.25
        a = 2 * math.sqrt(-p / 3)
        phi = math.acos(3 * q / (p * a))
        return a * math.cos(phi / 3 - 2 * math.pi * 2 / 3)

    def minimizer(self):
        return self.full(self.root())

    def known_optimum(self):
        r = self.root()
        return self.dim * 0.5 * (r**4 - 16 * r**2 + 5 * r)


class Levy(SyntheticTask):
    """With w = 1 + (x − 1)/4: sin²(π w_1) + Σ_{i<d} (w_i − 1)² (1 + 10 sin²(π w_i + 1))
    + (w_d − 1)² (1 + sin²(2π w_d)); x* = (1, ..., 1), f* = 0 (d + 1 terms).

    Start: the standard box [−10, 10]^d."""

    start_box = 10.0

    def terms(self, x):
        w = 1 + (x - 1) / 4
        first = torch.sin(math.pi * w[:1]) ** 2
        middle = (w[:-1] - 1) ** 2 * (1 + 10 * torch.sin(math.pi * w[:-1] + 1) ** 2)
        last = (w[-1:] - 1) ** 2 * (1 + torch.sin(2 * math.pi * w[-1:]) ** 2)
        return torch.cat([first, middle, last])

    def minimizer(self):
        return self.full(1.0)


class Griewank(SyntheticTask):
    """1 + Σ x_i²/4000 − Π cos(x_i/√i); x* = 0, f* = 0; not a sum of terms (the product couples
    the coordinates). Many shallow local minima, fewer relevant as d grows.

    Start: the box [−50, 50]^d (the textbook [−600, 600]^d is mostly a long walk down the bowl)."""

    start_box, sum_of_terms = 50.0, False

    def value(self, x):
        return (x**2).sum() / 4000 + (1 - torch.cos(x / self.index(x).sqrt()).prod())


class Zakharov(SyntheticTask):
    """Σ x_i² + s² + s⁴ with s = Σ ½ i x_i; x* = 0, f* = 0. Convex and unimodal, but the Hessian
    at x* is I + v vᵀ with v_i = i/2 (condition number ≈ 1 + d³/12), and the quartic makes the
    curvature along v grow fast away from x*; not a sum of terms (s couples the coordinates).

    Start: the standard box [−5, 10]^d, i.e. 2.5 ± 7.5."""

    centre, start_box, sum_of_terms = 2.5, 7.5, False

    def value(self, x):
        s = 0.5 * (self.index(x) * x).sum()
        return (x**2).sum() + s**2 + s**4
