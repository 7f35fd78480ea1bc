"""Slow, obviously-correct derivative oracles for checking exact gradients.

* :func:`complex_step_gradient`: :math:`\\partial_i f(\\theta) = \\mathrm{Im} f(\\theta + i h e_i)/h`
  with ``h = 1e-30``: no subtractive cancellation, exact to rounding for functions that
  are analytic in ``theta`` (every dense exact solver here accepts complex input);
* :func:`central_difference_gradient`: :math:`(f(\\theta + h e_i) - f(\\theta - h e_i))/2h`,
  error :math:`O(h^2)` plus rounding :math:`O(\\epsilon/h)`; for iterative (sparse) solvers.

Both cost one evaluation of ``f`` (two for central differences) per coordinate.
"""
from __future__ import annotations

import numpy as np

from .._validation import ArgumentTypeError, as_float_array, check_float, check_problem

__all__ = ["complex_step_gradient", "central_difference_gradient", "objective_of"]

COMPLEX_STEP = 1e-30


def complex_step_gradient(f, theta, *, h: float = COMPLEX_STEP) -> np.ndarray:
    """Gradient of the real-analytic scalar ``f`` at real ``theta`` by complex steps (``h`` > 0)."""
    theta = _check_oracle(f, theta, h)
    g = np.empty(theta.size)
    for i, e in enumerate(np.eye(theta.size)):
        g[i] = np.imag(f(theta + 1j * h * e.reshape(theta.shape))) / h
    return g.reshape(theta.shape)


def central_difference_gradient(f, theta, *, h: float = 1e-5) -> np.ndarray:
    """Gradient of the scalar ``f`` at ``theta`` by central differences with step ``h`` > 0."""
    theta = _check_oracle(f, theta, h)
    g = np.empty(theta.size)
    for i, e in enumerate(np.eye(theta.size)):
        e = h * e.reshape(theta.shape)
        g[i] = (f(theta + e) - f(theta - e)) / (2 * h)
    return g.reshape(theta.shape)


def objective_of(mdp, policy):
    """``theta -> J(pi_theta)`` (complex ``theta`` allowed) for the oracles above."""
    from .. import exact

    check_problem(mdp, policy)
    return lambda th: exact.objective(mdp, policy.probs(th))


def _check_oracle(f, theta, h):
    if not callable(f):
        raise ArgumentTypeError(f"`f` must be callable theta -> scalar; got {type(f).__name__}")
    check_float(h, "h", low=0.0, low_open=True)
    return np.array(as_float_array(theta, "theta"), dtype=float)
