"""tabularpg: exact and Monte Carlo policy gradients on finite MDPs.

One idea carries the design: estimators make weights, policies contract them with
their hand-derived score, and the exact gradient is the same contraction with the
expected weights ``d(s) pi(a|s) Q(s, a)``.
"""
from . import envs, estimators, exact, interop, moments, objectives, optim, rlhf, sampling, solve, sweep, testing
from ._validation import (
    EnumerationTooLargeError,
    ImproperPolicyError,
    NumericalError,
    ShapeError,
    TabularPGError,
    ValidationError,
)
from .estimators import estimate
from .mdp import MDP
from .policies import LinearSoftmax, NeuralSoftmax, Policy, TabularSoftmax
from .sampling import Batch, sample

__version__ = "0.1.0"

__all__ = [
    "MDP",
    "Policy",
    "TabularSoftmax",
    "LinearSoftmax",
    "NeuralSoftmax",
    "exact",
    "envs",
    "solve",
    "sampling",
    "sample",
    "Batch",
    "estimators",
    "estimate",
    "moments",
    "objectives",
    "optim",
    "testing",
    "interop",
    "sweep",
    "rlhf",
    "TabularPGError",
    "ValidationError",
    "ShapeError",
    "ImproperPolicyError",
    "NumericalError",
    "EnumerationTooLargeError",
    "__version__",
]
