"""Input validation at the public boundary.

Every public function checks its arguments here, once, before any work is done; the math
modules trust what they receive. Errors are ``ValueError``/``TypeError`` subclasses whose
message names the argument as the caller passed it, the expectation, and what was
received: "`clip` must lie in (0.0, 1.0); got 0".

Conventions of the checks:

* integers (:func:`check_int`) refuse floats, even integral ones such as ``2.0``, and bools;
* real scalars (:func:`check_float`) refuse NaN, infinities, complex numbers and bools, and
  state their range (closed or open) in the message;
* objects (:func:`check_mdp`, :func:`check_policy`, :func:`check_batch`) name the received
  type; a policy is also checked against the MDP's (S, A);
* arrays (:func:`as_float_array`) must be numeric, finite, real unless stated, and of the
  stated shape, named with both shapes;
* a single string where a sequence is expected is refused (:func:`check_sequence`);
* files: writers check the destination (directory, permissions, extension) before
  computing (:func:`check_writable_path`); readers name the path of a missing or foreign
  file (:class:`MissingFileError`, :class:`FileFormatError`).

Checks never modify or keep their inputs.
"""
from __future__ import annotations

import numbers
import os

import numpy as np

__all__ = [
    "TabularPGError",
    "ValidationError",
    "ShapeError",
    "ArgumentTypeError",
    "FileFormatError",
    "MissingFileError",
    "ImproperPolicyError",
    "NumericalError",
    "EnumerationTooLargeError",
    "as_rng",
    "as_float_array",
    "check_array",
    "check_batch",
    "check_bool",
    "check_cg_args",
    "check_choice",
    "check_dpo_args",
    "check_episode_selection",
    "check_float",
    "check_index_array",
    "check_prob_rows",
    "check_sampled_weights_args",
    "check_surrogate",
    "check_problem",
    "check_int",
    "check_instance",
    "check_mdp",
    "check_policy",
    "check_prob_table",
    "check_readable_file",
    "check_sequence",
    "check_theta",
    "check_writable_path",
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


class FileFormatError(ValidationError):
    """A file given to a reader is not in the expected format; the message names the path
    and what was expected."""


class MissingFileError(ValidationError, FileNotFoundError):
    """A file given to a reader does not exist (also a ``FileNotFoundError``)."""


def _describe(value) -> str:
    """``repr`` of a received value, shortened, with its type."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def as_rng(rng, name: str = "rng") -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from a Generator, a SeedSequence or an int seed >= 0.

    ``None`` is refused: every sampling function must be reproducible.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValidationError(f"`{name}` must be a numpy.random.Generator or an int seed >= 0; got {int(rng)}")
        return np.random.default_rng(int(rng))
    raise ArgumentTypeError(
        f"`{name}` must be a numpy.random.Generator or an int seed >= 0; got {_describe(rng)}")


def _range_text(low, high, low_open=False, high_open=False) -> str:
    """The range as a predicate: ``"lie in [0.0, 1.0]"``, ``"be >= 1"``, ``"be > 0"``."""
    if low is not None and high is not None:
        return f"lie in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"be {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"be {'<' if high_open else '<='} {high}"
    return ""


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool = False):
    """Check an integer (not a bool, not a float such as 2.0 or 2.5) in [minimum, maximum].

    Returns a Python ``int`` (or ``None`` when ``allow_none`` and ``value is None``).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        rng = _range_text(minimum, maximum)
        raise ArgumentTypeError(
            f"`{name}` must be an int{' (' + rng[3:] + ')' if rng else ''}{' or None' if allow_none else ''}; "
            f"got {_describe(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValidationError(f"`{name}` must {_range_text(minimum, maximum)}; got {value}")
    return value


def check_float(value, name: str, *, low=None, high=None, low_open: bool = False, high_open: bool = False,
                allow_none: bool = False):
    """Check a finite real number (not NaN, not infinite, not complex, not a bool) in the
    interval from ``low`` to ``high`` (closed unless ``low_open``/``high_open``).

    Returns a Python ``float`` (or ``None`` when ``allow_none`` and ``value is None``).
    """
    if value is None and allow_none:
        return None
    rng = _range_text(low, high, low_open, high_open)
    where = f", {rng.split(' ', 1)[1]}" if rng else ""  # ", in [0.0, 1.0]" or ", >= 0.0"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
            value = value.item()
        else:
            raise ArgumentTypeError(f"`{name}` must be a real number{where}; got {_describe(value)}")
    value = float(value)
    if not np.isfinite(value):
        raise ValidationError(f"`{name}` must be finite{where}; got {value}")
    if ((low is not None and (value < low or (low_open and value == low)))
            or (high is not None and (value > high or (high_open and value == high)))):
        raise ValidationError(f"`{name}` must {rng}; got {value:g}")
    return value


def check_bool(value, name: str) -> bool:
    """Check a boolean (``True``/``False`` or a numpy bool); ints and strings are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"`{name}` must be True or False; got {_describe(value)}")
    return bool(value)


def check_choice(value, name: str, choices):
    """Check that ``value`` is one of ``choices`` (compared with ``==``; strings exactly)."""
    choices = tuple(choices)
    if not any(type(value) is type(c) and value == c for c in choices):
        raise ValidationError(f"`{name}` must be one of {', '.join(map(repr, choices))}; got {_describe(value)}")
    return value


def check_instance(value, cls, name: str, what: str):
    """Check ``isinstance(value, cls)``; the message names ``what`` and the received type."""
    if not isinstance(value, cls):
        detail = ""
        if isinstance(value, np.ndarray):
            detail = f" of shape {value.shape}"
        elif isinstance(value, (str, numbers.Number)) and len(repr(value)) <= 40:
            detail = f" {value!r}"
        raise ArgumentTypeError(f"`{name}` must be {what}; got {type(value).__name__}{detail}")
    return value


def check_mdp(mdp, name: str = "mdp"):
    """Check a :class:`tabularpg.MDP`."""
    from .mdp import MDP

    return check_instance(mdp, MDP, name, "a tabularpg.MDP")


def check_policy(policy, name: str = "policy", *, mdp=None):
    """Check a :class:`tabularpg.Policy`; with ``mdp``, also its (S, A) against the MDP's."""
    from .policies import Policy

    check_instance(policy, Policy, name, "a tabularpg Policy (e.g. TabularSoftmax, LinearSoftmax)")
    if mdp is not None and (policy.n_states, policy.n_actions) != (mdp.n_states, mdp.n_actions):
        raise ShapeError(
            f"`{name}` has (S, A) = {(policy.n_states, policy.n_actions)}; the MDP has "
            f"(S, A) = {(mdp.n_states, mdp.n_actions)}")
    return policy


def check_batch(batch, name: str = "batch", *, policy=None, against: str = "policy"):
    """Check a :class:`tabularpg.sampling.Batch`; with ``policy``, that its states and actions
    fit the policy's (S, A)."""
    from .sampling import Batch

    check_instance(batch, Batch, name, "a tabularpg.sampling.Batch (from tabularpg.sample)")
    if policy is not None and batch.states.size:
        if not isinstance(policy, _Shape):
            check_policy(policy)
        # entries of steps that are not alive hold 0, so the maxima over all entries suffice
        s_max = int(batch.states.max())
        a_max = int(batch.actions.max())
        if s_max >= policy.n_states or a_max >= policy.n_actions:
            raise ShapeError(
                f"`{name}` visits states up to {s_max} and actions up to {a_max}; `{against}` has "
                f"(S, A) = {(policy.n_states, policy.n_actions)}")
    return batch


def check_sequence(value, name: str, *, min_len: int = 0) -> list:
    """Check a sequence (list, tuple, array, iterable); a single string is refused, since it
    would be read as a sequence of letters. Returns a list."""
    if isinstance(value, (str, bytes)):
        raise ArgumentTypeError(
            f"`{name}` must be a sequence (e.g. a list); got the string {value!r}: wrap it as [{value!r}]")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        raise ArgumentTypeError(f"`{name}` must be a sequence; got a 0-d array")
    try:
        out = list(value)
    except TypeError:
        raise ArgumentTypeError(f"`{name}` must be a sequence (e.g. a list); got {_describe(value)}") from None
    if len(out) < min_len:
        raise ValidationError(f"`{name}` must have at least {min_len} element(s); got {len(out)}")
    return out


def _as_path(path, name: str) -> str:
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise ArgumentTypeError(f"`{name}` must be a path (str or os.PathLike); got {_describe(path)}")
    path = os.fspath(path)
    if not path:
        raise ValidationError(f"`{name}` must be a non-empty path; got ''")
    return path


def check_writable_path(path, name: str, *, suffixes=None) -> str:
    """Check, before any work is done, that a file can be written at ``path``.

    The extension must be one of ``suffixes`` (when given), the directory must exist and
    be writable, and an existing ``path`` must be a writable file (not a directory).
    Returns the path as a string.
    """
    path = _as_path(path, name)
    if suffixes is not None:
        suffixes = tuple(suffixes)
        if not path.lower().endswith(suffixes):
            raise ValidationError(
                f"`{name}` must end in {' or '.join(suffixes)} (the format is read from the extension); got {path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValidationError(f"`{name}` {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise ValidationError(f"`{name}` {path!r} is a directory; expected a file path")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise ValidationError(f"`{name}` {path!r} exists and is not writable")
    elif not os.access(directory, os.W_OK | os.X_OK):
        raise ValidationError(f"`{name}` {path!r}: directory {directory!r} is not writable")
    return path


#: Extensions of the table writers (:func:`tabularpg.sweep.write_table`) and of matplotlib's
#: raster/vector backends, for :func:`check_writable_path` before any computing.
TABLE_SUFFIXES = (".csv", ".parquet")
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp")


def check_readable_file(path, name: str) -> str:
    """Check that ``path`` names an existing, readable file; :class:`MissingFileError`
    (a ``FileNotFoundError``) otherwise. Returns the path as a string."""
    path = _as_path(path, name)
    if not os.path.exists(path):
        raise MissingFileError(f"`{name}` {path!r} does not exist")
    if os.path.isdir(path):
        raise ValidationError(f"`{name}` {path!r} is a directory; expected a file")
    if not os.access(path, os.R_OK):
        raise ValidationError(f"`{name}` {path!r} is not readable")
    return path


def as_float_array(x, name: str, *, ndim=None, shape=None, allow_complex: bool = False,
                   expected: str | None = None) -> np.ndarray:
    """Convert to a float (or complex) array and check its shape and finiteness.

    ``expected`` describes the expected shape in the message (e.g. ``"(S, A) = (3, 2)"``).
    Strings, objects and ragged nested lists are refused with :class:`ArgumentTypeError`.
    """
    if type(x) is np.ndarray and (x.dtype == _F64 or (allow_complex and x.dtype == _C128)):
        arr = x  # fast path: the arrays the library passes to itself
    else:
        arr = _numeric_array(x, name, allow_complex)
    if ndim is not None and arr.ndim not in ((ndim,) if isinstance(ndim, int) else tuple(ndim)):
        raise ShapeError(f"`{name}` must have {ndim} dimensions{' ' + expected if expected else ''}; "
                         f"got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ShapeError(f"`{name}` must have shape {expected or tuple(shape)}; got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValidationError(f"`{name}` must be finite; got {int(np.sum(~np.isfinite(arr)))} non-finite entries")
    return arr


_F64 = np.dtype(np.float64)
_C128 = np.dtype(np.complex128)


def _numeric_array(x, name, allow_complex):
    if isinstance(x, (str, bytes)) or x is None:
        raise ArgumentTypeError(f"`{name}` must be a numeric array; got {_describe(x)}")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested sequences, exotic objects
        raise ArgumentTypeError(f"`{name}` must be a numeric array; got {type(x).__name__} ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ArgumentTypeError(f"`{name}` must be a numeric array; got {type(x).__name__} of dtype {arr.dtype}")
    if np.iscomplexobj(arr) and not allow_complex:
        raise ArgumentTypeError(f"`{name}` must be real; got dtype {arr.dtype}")
    return arr.astype(np.result_type(arr.dtype, np.float64), copy=False)


check_array = as_float_array


def check_prob_rows(probs, name: str, *, atol: float = 1e-8) -> np.ndarray:
    """Check a real 2-D array whose rows are probability vectors (non-negative, summing to
    one within ``atol`` times the row length)."""
    probs = as_float_array(probs, name, ndim=2, expected="(R, K)")
    if probs.shape[1] == 0:
        raise ShapeError(f"`{name}` must have shape (R, K) with K >= 1; got {probs.shape}")
    if np.any(probs < 0):
        r, k = np.argwhere(probs < 0)[0]
        raise ValidationError(f"`{name}` entry ({r}, {k}) is {probs[r, k]:.3g}; expected >= 0")
    sums = probs.sum(axis=1)
    tol = atol * max(1, probs.shape[1])
    bad = np.flatnonzero(np.abs(sums - 1.0) > tol)
    if bad.size:
        raise ValidationError(f"`{name}` row {bad[0]} sums to {sums[bad[0]]:.12g}; expected 1 within {tol:g}")
    return probs


def check_index_array(x, name: str, *, shape=None, low: int | None = None, high: int | None = None) -> np.ndarray:
    """Check an integer array (bools and floats refused) with entries in [low, high)."""
    if isinstance(x, (str, bytes)):
        raise ArgumentTypeError(f"`{name}` must be an integer array; got {_describe(x)}")
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ArgumentTypeError(f"`{name}` must be an integer array; got dtype {arr.dtype}")
    if shape is not None and arr.shape != tuple(shape):
        raise ShapeError(f"`{name}` must have shape {tuple(shape)}; got {arr.shape}")
    if arr.size and ((low is not None and arr.min() < low) or (high is not None and arr.max() >= high)):
        raise ValidationError(f"`{name}` entries must lie in [{low if low is not None else '-inf'}, "
                              f"{high if high is not None else 'inf'}); "
                              f"got range [{arr.min()}, {arr.max()}]")
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


def check_episode_selection(episodes, n_episodes: int, name: str = "episodes"):
    """Check episode indices in [-n, n) (an int or int array) or a boolean mask of length n."""
    if isinstance(episodes, slice):
        return episodes
    arr = np.asarray(episodes)
    if arr.dtype == bool:
        if arr.shape != (n_episodes,):
            raise ShapeError(f"`{name}` as a boolean mask must have shape ({n_episodes},); got {arr.shape}")
        return arr
    return check_index_array(arr, name, low=-n_episodes, high=n_episodes)


_ABSENT = object()


def check_problem(mdp=_ABSENT, policy=_ABSENT, *, theta=None, _none_ok=(), **options):
    """One boundary call for the common arguments of the exact, sampled and optimizing
    functions, each checked by its name so that the message names it as the caller wrote it:

    * ``mdp`` a :class:`~tabularpg.MDP`; ``policy`` a Policy of the MDP's (S, A);
      ``theta`` of ``policy.theta_shape`` (returned, checked);
    * counts (``n_iter`` >= 0, ``n_episodes``, ``epochs``, ``max_trajectories`` ... >= 1,
      ``k`` >= 2, ``critic_sweeps`` >= 1; ``n_episodes`` may be None where documented);
    * rates and tolerances with their stated ranges (``step_size``, ``lr``, ``delta``,
      ``kl_target``, ``beta0`` > 0; ``clip`` in (0, 1); ``critic_lr`` in (0, 1];
      ``backtrack`` in (0, 1); ``tau``, ``damping`` >= 0);
    * booleans (``per_component``, ``adaptive_kl``, ...; ``closed_form`` may be None);
    * ``rng`` (Generator or int seed >= 0), ``progress`` (callable or None), ``horizon``
      (int >= 1, ``"geometric"`` or None), ``estimator`` (None, a registered name or an
      Estimator).
    """
    if mdp is not _ABSENT:
        check_mdp(mdp)
    else:
        mdp = None
    if policy is not _ABSENT:
        check_policy(policy, mdp=mdp)
    else:
        policy = None
    for name, value in options.items():
        if name in _BOOL_OPTIONS:
            if not (value is None and name in _NONE_OK):
                check_bool(value, name)
        elif name in _COUNT_OPTIONS:
            check_int(value, name, minimum=_COUNT_OPTIONS[name], allow_none=name in _NONE_OK or name in _none_ok)
        elif name in _FLOAT_OPTIONS:
            low, high, low_open, high_open = _FLOAT_OPTIONS[name]
            check_float(value, name, low=low, high=high, low_open=low_open, high_open=high_open)
        elif name == "rng":
            as_rng(value, name)
        elif name == "progress":
            if value is not None and not callable(value):
                raise ArgumentTypeError(f"`progress` must be callable (e.g. tqdm.tqdm) or None; got {_describe(value)}")
        elif name == "horizon":
            if isinstance(value, str):
                if value != "geometric":
                    raise ValidationError(f"`horizon` must be an int >= 1, 'geometric' or None; got {value!r}")
            else:
                check_int(value, name, minimum=1, allow_none=True)
        elif name in ("theta0", "theta_old"):
            if policy is not None:
                as_float_array(value, name, shape=policy.theta_shape,
                               expected=f"{tuple(policy.theta_shape)} (the policy's theta_shape)")
        elif name == "pi":
            check_prob_table(value, mdp.n_states, mdp.n_actions, "pi")
        elif name == "behavior":
            if isinstance(value, tuple):
                if len(value) != 2:
                    raise ArgumentTypeError(f"`behavior` must be an (S, A) table or a pair (policy, theta); "
                                            f"got a tuple of {len(value)}")
                check_policy(value[0], "behavior", mdp=mdp)
                as_float_array(value[1], "behavior", shape=value[0].theta_shape,
                               expected=f"{tuple(value[0].theta_shape)} (the behavior policy's theta_shape)")
            elif value is not None:
                check_prob_table(as_float_array(value, "behavior"), mdp.n_states, mdp.n_actions, "behavior")
        elif name == "mdps":
            if value is not None:
                if not isinstance(value, dict):
                    raise ArgumentTypeError(f"`mdps` must be a dict name -> MDP or None; got {_describe(value)}")
                from .mdp import MDP

                for key, m in value.items():
                    check_instance(m, MDP, "mdps", f"a dict name -> tabularpg.MDP (entry {key!r})")
        elif name == "estimator":
            if value is not None:
                from .estimators import _resolve

                _resolve(value)
        else:  # pragma: no cover - a programming error in the caller
            raise TypeError(f"check_problem does not know how to check {name!r}")
    if theta is not None and policy is not None:
        return policy.check_theta(theta)
    return None


_BOOL_OPTIONS = {"per_component", "discount", "adaptive_kl", "closed_form", "time_indexed", "occupancy",
                 "monte_carlo", "quick"}
_COUNT_OPTIONS = {"max_trajectories": 1, "n_iter": 0, "n_episodes": 1, "epochs": 1, "k": 2, "cg_iters": 1,
                  "max_backtracks": 1, "critic_sweeps": 1, "n": 1, "seed": 0}
_NONE_OK = {"closed_form"}
#: name -> (low, high, low_open, high_open)
_FLOAT_OPTIONS = {
    "step_size": (0.0, None, True, False), "lr": (0.0, None, True, False), "delta": (0.0, None, True, False),
    "kl_target": (0.0, None, True, False), "beta0": (0.0, None, True, False), "beta": (0.0, None, True, False),
    "clip": (0.0, 1.0, True, True), "critic_lr": (0.0, 1.0, True, False), "backtrack": (0.0, 1.0, True, True),
    "tau": (0.0, None, False, False), "damping": (0.0, None, False, False), "tol": (0.0, None, True, False),
}


def check_dpo_args(policy=_ABSENT, pi_ref=None, *, prefs=None, reward=None, mu=None, required=()):
    """Boundary checks of the DPO functions: ``pi_ref`` (X, Y) a probability table,
    ``policy`` of (S, A) = (X, Y), ``reward`` (X, Y) finite, ``mu`` (X,) finite,
    ``prefs`` a triple of int arrays ``(x, y_w, y_l)`` of one shape within the table.
    Names in ``required`` must not be None."""
    given = {"prefs": prefs, "reward": reward, "mu": mu}
    for name in required:
        if given[name] is None:
            raise ArgumentTypeError(f"`{name}` is required here; got None")
    pi_ref = as_float_array(pi_ref, "pi_ref", ndim=2, expected="(X, Y)")
    X, Y = pi_ref.shape
    if policy is not _ABSENT:
        check_policy(policy)
        if (policy.n_states, policy.n_actions) != (X, Y):
            raise ShapeError(f"`policy` has (S, A) = {(policy.n_states, policy.n_actions)}; `pi_ref` has "
                             f"shape (X, Y) = {(X, Y)}")
    if reward is not None:
        r = as_float_array(reward, "reward")
        if r.shape != (X, Y):
            raise ShapeError(f"`reward` must have the shape of `pi_ref` (X, Y) = {(X, Y)}; got {r.shape}")
    if mu is not None:
        as_float_array(mu, "mu", shape=(X,), expected=f"(X,) = ({X},)")
    if prefs is not None:
        if isinstance(prefs, (str, bytes)) or not isinstance(prefs, (tuple, list)) or len(prefs) != 3:
            raise ArgumentTypeError(f"`prefs` must be a triple (x, y_w, y_l) of int arrays; got {_describe(prefs)}")
        x = check_index_array(prefs[0], "prefs", low=0, high=X)
        for part in prefs[1:]:
            check_index_array(part, "prefs", shape=x.shape, low=0, high=Y)


def check_cg_args(matvec, b, n_iter, tol):
    """Boundary checks of :func:`tabularpg.optim.conjugate_gradient`; returns ``b`` as an array."""
    if not callable(matvec):
        raise ArgumentTypeError(f"`matvec` must be callable v -> F v; got {_describe(matvec)}")
    b = as_float_array(b, "b", allow_complex=True)
    if b.ndim == 0:
        raise ShapeError("`b` must be an array with at least one dimension; got a scalar")
    check_int(n_iter, "n_iter", minimum=1)
    check_float(tol, "tol", low=0.0)
    return b


def check_surrogate(sur, policy, name: str = "sur"):
    """Check a :class:`tabularpg.objectives.Surrogate` and a policy of its (S, A)."""
    from .objectives import Surrogate

    check_instance(sur, Surrogate, name, "a tabularpg.objectives.Surrogate (Surrogate.at(mdp, policy, theta_old))")
    check_policy(policy)
    if sur.pi_old.shape != (policy.n_states, policy.n_actions):
        raise ShapeError(f"`policy` has (S, A) = {(policy.n_states, policy.n_actions)}; `{name}` was built for "
                         f"(S, A) = {sur.pi_old.shape}")
    return sur


def check_sampled_weights_args(batch, pi_old, *, policy=_ABSENT, advantages=_ABSENT, clip=None, discount=True):
    """Boundary checks of the sampled surrogate / KL weights: ``batch`` a Batch whose states
    fit ``pi_old`` (S, A) (a probability table), ``advantages`` of the batch's shape (N, T),
    ``clip`` > 0 or None, ``discount`` a bool."""
    if policy is not _ABSENT:
        check_policy(policy)
        check_batch(batch, policy=policy)
    else:
        check_batch(batch)
    pi_old = as_float_array(pi_old, "pi_old", ndim=2, expected="(S, A)")
    if policy is not _ABSENT:
        check_prob_table(pi_old, policy.n_states, policy.n_actions, "pi_old")
    else:
        check_prob_table(pi_old, *pi_old.shape, "pi_old")
        check_batch(batch, policy=_Shape(*pi_old.shape), against="pi_old")
    if advantages is not _ABSENT:
        as_float_array(advantages, "advantages", shape=batch.states.shape,
                       expected=f"(N, T) = {batch.states.shape} (the batch's)")
    check_float(clip, "clip", low=0.0, low_open=True, allow_none=True)
    check_bool(discount, "discount")


class _Shape:
    """(S, A) stand-in for a policy in :func:`check_batch`."""

    def __init__(self, n_states, n_actions):
        self.n_states, self.n_actions = n_states, n_actions
