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
