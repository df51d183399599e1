"""SWAN's whitening rule (bench/optimizers/swan.py): the polar Newton-Schulz iteration stops on its
residual, lands within 1e-3 of exact whitening on gradient-like matrices of every orientation, and
keeps the row-centring null direction out of the update."""

from __future__ import annotations

import pytest
import torch

from bench.optimizers.swan import polar_newton_schulz, swan_direction
from bench.optimizers.swan_accuracy import coupled_inverse_sqrt, exact_whitening, grad_norm, gradient_like


def error(w: torch.Tensor, exact: torch.Tensor) -> float:
    return (torch.linalg.matrix_norm(w.double() - exact) / torch.linalg.matrix_norm(exact)).item()


@pytest.mark.parametrize("shape", [(48, 96), (96, 48), (64, 64)])
def test_the_residual_rule_reaches_exact_whitening_and_stops_early(shape):
    g = grad_norm(gradient_like(*shape))
    exact = exact_whitening(g)
    w, steps = polar_newton_schulz(g, 60, 1e-4)
    assert error(w, exact) < 1e-3
    assert steps < 60  # the rule, not the cap, ended the loop
    # the old fixed 10 coupled steps on the same matrix were far worse: the default had to change
    assert error(coupled_inverse_sqrt(g, 10), exact) > 10 * error(w, exact)


def test_a_tolerance_below_the_rounding_floor_stops_at_the_floor():
    g = grad_norm(gradient_like(64, 64))
    w, steps = polar_newton_schulz(g, 200, 1e-30)
    assert steps < 200
    assert error(w, exact_whitening(g)) < 1e-3


@pytest.mark.parametrize("shape", [(40, 24), (24, 24), (24, 40)])
def test_the_centring_null_direction_stays_out(shape):
    g = gradient_like(*shape)
    w = swan_direction(g, 60, 1e-8, rescale=True, tol=1e-4)
    ones = torch.ones(shape[1])
    assert (torch.linalg.vector_norm(w @ ones) / torch.linalg.matrix_norm(w)).item() < 1e-5


@pytest.mark.parametrize("shape", [(48, 96), (96, 48)])
def test_a_rank_deficient_gradient_is_not_filled_with_rounding_noise(shape):
    """A gradient from 16 samples has rank 16: its polar factor has 16 unit singular values, so
    ||W||_F^2 = 16. Rounding noise along the null space grows 1.5x per step; the residual stalls
    once the real directions converge, and the rule stops there instead of running to the cap."""
    gen = torch.Generator().manual_seed(0)
    g = grad_norm(torch.randn(16, shape[0], generator=gen).T @ torch.randn(16, shape[1], generator=gen))
    w, steps = polar_newton_schulz(g, 60, 1e-4)
    assert steps < 60
    assert abs(w.square().sum().item() - 16) < 1e-2
    w_cap, _ = polar_newton_schulz(g, 60, 0.0)  # the cap without the rule: noise becomes whitened directions
    assert w_cap.square().sum().item() > 30
