"""Input validation at the public boundary.

Every public function checks its arguments here, once; the math modules trust what
they receive. Errors are ``ValueError``/``TypeError`` subclasses whose message names the
argument, the expectation, and what was received.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "TabularPGError",
    "ValidationError",
    "ShapeError",
    "ImproperPolicyError",
    "NumericalError",
    "EnumerationTooLargeError",
    "as_rng",
    "check_int",
    "check_prob_table",
    "check_theta",
]


class TabularPGError(Exception):
    """Base class of every error raised by tabularpg."""


class ValidationError(TabularPGError, ValueError):
    """An argument has the right type but a bad value."""


class ShapeError(ValidationError):
    """An array argument has the wrong shape."""


class NumericalError(TabularPGError, ArithmeticError):
    """A computation cannot return a trustworthy number: an ill-conditioned linear system,
    a residual above its stated bound, or a non-finite iterate. The message says which
    quantity failed and why; nothing wrong is ever returned in its place."""


class ImproperPolicyError(TabularPGError, ValueError):
    """With ``gamma == 1`` and no horizon, the policy does not terminate w.p. 1 (or
    terminates so slowly that its values cannot be computed to the stated accuracy)."""


class EnumerationTooLargeError(TabularPGError, ValueError):
    """Exact enumeration of trajectories would exceed the stated limit."""


class ArgumentTypeError(TabularPGError, TypeError):
    """An argument has the wrong type."""


def as_rng(rng, name: str = "rng") -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from a Generator or an int seed.

    ``None`` is refused: every sampling function must be reproducible.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (numbers.Integral, np.random.SeedSequence)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise ArgumentTypeError(
        f"`{name}` must be a numpy.random.Generator or an int seed; got {type(rng).__name__}"
    )


def check_int(value, name: str, *, minimum: int | None = None, allow_none: bool = False):
    """Check that ``value`` is an integer (not a bool) at least ``minimum``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"`{name}` must be an int; got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValidationError(f"`{name}` must be >= {minimum}; got {value}")
    return value


def check_float(value, name: str, *, low=None, high=None) -> float:
    """Check a finite real number in the closed interval [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"`{name}` must be a real number; got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValidationError(f"`{name}` must be finite; got {value}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValidationError(f"`{name}` must lie in [{low}, {high}]; got {value}")
    return value


def as_float_array(x, name: str, *, ndim=None, shape=None, allow_complex: bool = False) -> np.ndarray:
    """Convert to a float (or complex) array and check its shape and finiteness."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ArgumentTypeError(f"`{name}` must be array-like; got {type(x).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ArgumentTypeError(f"`{name}` must be a numeric array; got dtype {arr.dtype}")
    if np.iscomplexobj(arr) and not allow_complex:
        raise ArgumentTypeError(f"`{name}` must be real; got dtype {arr.dtype}")
    arr = arr.astype(np.result_type(arr.dtype, np.float64), copy=False)
    if ndim is not None and arr.ndim not in np.atleast_1d(ndim):
        raise ShapeError(f"`{name}` must have {ndim} dimensions; got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ShapeError(f"`{name}` must have shape {tuple(shape)}; got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValidationError(f"`{name}` must be finite; got {int(np.sum(~np.isfinite(arr)))} non-finite entries")
    return arr


def check_prob_table(pi, n_states: int, n_actions: int, name: str = "pi", *, atol: float = 1e-8) -> np.ndarray:
    """Check an action-probability table of shape (S, A) whose rows sum to 1.

    Complex tables are accepted (for complex-step differentiation); the check then uses
    the real part.
    """
    pi = as_float_array(pi, name, shape=(n_states, n_actions), allow_complex=True)
    re = pi.real
    if np.any(re < -atol):
        s, a = np.argwhere(re < -atol)[0]
        raise ValidationError(f"`{name}` entry (s={s}, a={a}) is {re[s, a]:.3g}; expected >= 0")
    sums = re.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > atol)
    if bad.size:
        s = bad[0]
        raise ValidationError(f"`{name}` row (s={s}) sums to {sums[s]:.12g}; expected 1 within {atol:g}")
    return pi


def check_theta(theta, shape, name: str = "theta") -> np.ndarray:
    """Check a parameter array of the policy's shape (real or complex)."""
    return as_float_array(theta, name, shape=shape, allow_complex=True)
