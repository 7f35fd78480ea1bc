"""tabularpg: exact and Monte Carlo policy gradients on finite MDPs.

See ``DESIGN`` in the repository: estimators make weights, policies contract them with
their hand-derived score, and the exact gradient is the same contraction with the
expected weights ``d(s) pi(a|s) Q(s, a)``.
"""
from . import envs, exact, solve
from ._validation import (
    EnumerationTooLargeError,
    ImproperPolicyError,
    ShapeError,
    TabularPGError,
    ValidationError,
)
from .mdp import MDP
from .policies import LinearSoftmax, Policy, TabularSoftmax

__version__ = "0.1.0"

__all__ = [
    "MDP",
    "Policy",
    "TabularSoftmax",
    "LinearSoftmax",
    "exact",
    "envs",
    "solve",
    "TabularPGError",
    "ValidationError",
    "ShapeError",
    "ImproperPolicyError",
    "EnumerationTooLargeError",
    "__version__",
]
