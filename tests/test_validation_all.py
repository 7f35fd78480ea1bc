"""Every parameter of every function in the bad-input tables, given each of a fixed set of
wrong values (a string, None, NaN, a complex number, -1, 2.5, True, an arbitrary object,
a (7, 5) array, a list, a dict): the call either succeeds (the value is legal there) or
raises a library error (``TabularPGError``), never a raw ``AttributeError``,
``TypeError``, ``IndexError`` or broadcasting error from inside the math, and a refused
call leaves the array arguments unchanged."""
import copy
import importlib
import inspect
import warnings

import numpy as np
import pytest
from _bad_inputs import GOOD_CALLS, _arrays

from tabularpg import TabularPGError

for _m in ("test_validation_mdp", "test_validation_envs", "test_validation_policies", "test_validation_estimators",
           "test_validation_exact_sampling", "test_validation_optim", "test_validation_solve_interop",
           "test_validation_sweep", "test_validation_verify"):
    importlib.import_module(_m)

WRONG = [("str", "zz"), ("none", None), ("nan", float("nan")), ("complex", 1 + 1j), ("negative", -1),
         ("float", 2.5), ("bool", True), ("object", object()), ("array", np.zeros((7, 5))), ("list", [1, 2]),
         ("dict", {})]
_seen = set()
CASES = []
for _label, _fn, _good in GOOD_CALLS:
    if _label in _seen:
        continue
    _seen.add(_label)
    _sig = inspect.signature(_fn)
    for _name in _good:
        if _sig.parameters[_name].kind is inspect.Parameter.VAR_KEYWORD:
            continue
        CASES.append(pytest.param(_fn, _good, _name, id=f"{_label}-{_name}"))


@pytest.mark.parametrize("fn, good, name", CASES)
def test_wrong_values_give_library_errors_or_nothing(fn, good, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # writers that accept a value write here, not in the repository
    sig = inspect.signature(fn)
    for sub, value in WRONG:
        call = {**good, name: value}
        kwargs = {}
        for n, v in call.items():
            if sig.parameters[n].kind is inspect.Parameter.VAR_KEYWORD:
                kwargs.update(v)
            else:
                kwargs[n] = v
        arrays = _arrays(kwargs)
        before = [copy.deepcopy(a) for a in arrays]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fn(**kwargs)
            except TabularPGError:
                for a, b in zip(arrays, before):
                    assert np.array_equal(a, b, equal_nan=True), f"{name}={sub}: refused call changed an array"
            except Exception as exc:
                pytest.fail(f"{name}={sub}: raw {type(exc).__name__}: {exc}")
