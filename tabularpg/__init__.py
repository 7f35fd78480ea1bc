r"""tabularpg: exact and Monte Carlo policy gradients on finite MDPs, in pure NumPy/SciPy.

One idea carries the package: every score-function gradient estimate is
:math:`\hat g = \sum_t \sum_a w_{t,a} \nabla_\theta \log \pi_\theta(a \mid s_t)`. Estimators
(:mod:`tabularpg.estimators`) make the weights ``w``; policies (:class:`TabularSoftmax`,
:class:`LinearSoftmax`) contract them with their hand-derived score; and the exact gradient
(:func:`tabularpg.exact.policy_gradient`) is the same contraction with the expected weights
:math:`d(s)\,\pi(a \mid s)\,Q(s, a)` (the policy gradient theorem of Sutton et al. 2000). So
every Monte Carlo estimator comes with its exact expectation (:func:`tabularpg.estimators.expected`)
and, on small problems, its exact covariance (:func:`tabularpg.moments.exact_moments`).

The estimators follow the published derivations: REINFORCE (Williams 1992), reward-to-go
and the policy gradient theorem (Sutton et al. 2000), variance-optimal baselines
(Greensmith, Bartlett and Baxter 2004), GAE (Schulman et al. 2016), TRPO and PPO (Schulman
et al. 2015, 2017), RLOO (Kool et al. 2019; Ahmadian et al. 2024), DPO (Rafailov et al.
2023); the pitfalls are checked too: the missing :math:`\gamma^t` (Nota and Thomas 2020),
softmax PG plateaus (Mei et al. 2020) and natural-gradient rates (Agarwal et al. 2021).
The documentation's derivations guide maps each identity to the functions and tests that
check it; ``tabularpg verify`` checks them all numerically.
"""
from . import (
    envs,
    estimators,
    exact,
    interop,
    moments,
    objectives,
    optim,
    rlhf,
    sampling,
    solve,
    sweep,
    testing,
)
from ._validation import (
    ArgumentTypeError,
    EnumerationTooLargeError,
    FileFormatError,
    ImproperPolicyError,
    MissingFileError,
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
    "ArgumentTypeError",
    "FileFormatError",
    "MissingFileError",
    "ImproperPolicyError",
    "NumericalError",
    "EnumerationTooLargeError",
    "__version__",
]
