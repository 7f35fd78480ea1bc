"""Rows of bad-argument tables, generated from a function's good call and the kind of
each argument, and the runner that checks each row.

A row calls ``fn`` with one argument replaced by a bad value and expects the library's
error (``ValidationError``/``ShapeError``/``ArgumentTypeError``) whose message names the
argument as the caller passed it (`` `name` ``). The runner also checks that the refused
call left every array argument unchanged ("nothing lost").
"""
from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
import scipy.sparse as sp

from tabularpg._validation import ArgumentTypeError, ShapeError, ValidationError

T, V, SH = ArgumentTypeError, ValidationError, ShapeError
#: (label, fn, good call) of every table, for exploratory sweeps over all parameters
GOOD_CALLS = []


class Bad:
    """Bad values of an argument kind: list of (label, value, error)."""

    def __init__(self, *rows):
        self.rows = list(rows)

    def __add__(self, other):
        return Bad(*(self.rows + other.rows))


def int_(minimum=None, maximum=None, none=False):
    rows = [("float", 2.5, T), ("integral-float", 2.0, T), ("bool", True, T), ("str", "3", T),
            ("nan", float("nan"), T), ("complex", 1j, T)]
    if not none:
        rows.append(("none", None, T))
    if minimum is not None:
        rows.append(("below", minimum - 1, V))
    if maximum is not None:
        rows.append(("above", maximum + 1, V))
    return Bad(*rows)


def float_(low=None, high=None, low_open=False, high_open=False, none=False):
    rows = [("nan", float("nan"), V), ("inf", float("inf"), V), ("complex", 0.5 + 1j, T), ("str", "0.5", T)]
    if not none:
        rows.append(("none", None, T))
    if low is not None:
        rows.append(("below", low - 1.0 if not low_open else low, V))
    if high is not None:
        rows.append(("above", high + 1.0 if not high_open else high, V))
    return Bad(*rows)


def bool_():
    return Bad(("str", "yes", T), ("int", 2, T))


def obj(what="object"):
    return Bad(("str", "m", T), ("int", 3, T), ("none", None, T), ("array", np.zeros((2, 2)), T))


def seq():
    return Bad(("str", "abc", T), ("int", 3, T))


def rng_():
    return Bad(("str", "seed", T), ("float", 2.5, T), ("negative", -1, V), ("none", None, T))


def array(good, *, complex_ok=False, short=True, extra=()):
    """Bad values of an array argument whose good value is ``good``."""
    good = np.asarray(good)
    rows = [("str", "x", T), ("wrong-shape", np.zeros(good.shape + (2,)), SH),
            ("nan", np.full(good.shape, np.nan), V), ("inf", np.full(good.shape, np.inf), V)]
    if good.ndim >= 1 and short:
        rows.append(("short", np.zeros(good.shape[:-1] + (good.shape[-1] + 1,)), SH))
    if not complex_ok:
        rows.append(("complex", good.astype(complex) + 1j, T))
    return Bad(*rows, *extra)


def rows_for(label, fn, args, kwargs, kinds, **fixed_errors):
    """``pytest.param`` rows: for every argument in ``kinds`` and each of its bad values,
    the good call with that one argument replaced. ``args`` are bound to their names."""
    sig = inspect.signature(fn)
    bound = sig.bind_partial(*args, **kwargs)
    good = dict(bound.arguments)
    GOOD_CALLS.append((label, fn, good))
    out = []
    for name, bad in kinds.items():
        for sub, value, err in bad.rows:
            call = {**good, name: value}
            out.append(pytest.param(fn, call, err, f"`{name}`", id=f"{label}-{name}-{sub}"))
    return out


def _arrays(obj):
    """Array-like leaves of an argument (ndarrays, sparse matrices), for the unchanged check."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if sp.issparse(obj):
        return [obj.data, getattr(obj, "indices", obj.data), getattr(obj, "indptr", obj.data)]
    if isinstance(obj, (list, tuple)):
        return [a for x in obj for a in _arrays(x)]
    if isinstance(obj, dict):
        return [a for x in obj.values() for a in _arrays(x)]
    return []


def run_row(fn, args, kwargs, error, words):
    """Call ``fn(*args, **kwargs)``: it must raise ``error`` with ``words`` in its message
    and leave every array argument as it was."""
    arrays = _arrays(list(args)) + _arrays(kwargs)
    before = [copy.deepcopy(a) for a in arrays]
    with pytest.raises(error) as info:
        fn(*args, **kwargs)
    assert words in str(info.value), f"message {str(info.value)!r} does not contain {words!r}"
    assert isinstance(info.value, (ValidationError, ArgumentTypeError)), type(info.value)
    for a, b in zip(arrays, before):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True), \
            "a refused call changed its array argument"
    return info.value


def run_param(fn, call, error, words):
    """Run one row made by :func:`rows_for` (``call`` maps parameter names to values)."""
    sig = inspect.signature(fn)
    args, kwargs = [], {}
    for name, value in call.items():
        p = sig.parameters[name]
        if p.kind is p.POSITIONAL_ONLY:
            args.append(value)
        elif p.kind is p.VAR_KEYWORD:
            kwargs.update(value)
        else:
            kwargs[name] = value
    return run_row(fn, args, kwargs, error, words)


# ----------------------------------------------------------------------------- fixtures
def small_problem():
    """A 3-state, 2-action Garnet, a tabular policy, theta, and a batch (horizon 4)."""
    import tabularpg as tpg

    mdp = tpg.envs.garnet(3, 2, 2, rng=1, gamma=0.8)
    pol = tpg.TabularSoftmax(3, 2)
    theta = np.random.default_rng(0).normal(size=(3, 2))
    batch = tpg.sample(mdp, pol, theta, 6, rng=0, horizon=4)
    return mdp, pol, theta, batch


#: A policy sized for another MDP than the small problem's (3 states, 2 actions).
SMALL_POLICY_SHAPE = (2, 2)


def shared_bads(theta):
    """``(POLICY, THETA, PI_BAD)``: the bad values of the ``policy``, ``theta`` and ``pi``
    arguments that every table over :func:`small_problem` shares (a policy of the wrong
    size; theta arrays; pi as a string, of the wrong shape, NaN, rows not summing to one)."""
    import tabularpg as tpg

    policy = obj() + Bad(("wrong-size", tpg.TabularSoftmax(*SMALL_POLICY_SHAPE), SH))
    pi_bad = Bad(("str", "pi", T), ("shape", np.full((2, 2), 0.5), SH), ("nan", np.full((3, 2), np.nan), V),
                 ("not-summing", np.ones((3, 2)), V))
    return policy, array(theta, complex_ok=True), pi_bad


def param_ids(rows):
    return [r.id for r in rows]
