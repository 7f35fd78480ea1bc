"""Testing tools for users' own estimators.

* :func:`assert_unbiased`, :func:`assert_variance` — statistical assertions with a
  stated false-alarm rate (:mod:`tabularpg.testing.assertions`);
* :mod:`tabularpg.testing.oracles` — complex-step and central-difference gradients;
* :mod:`tabularpg.testing.strategies` — hypothesis strategies (``mdps``, ``policies``,
  ``thetas``, ``problems``); needs the ``hypothesis`` package (``tabularpg[test]``).
"""
import importlib

from . import oracles
from .assertions import (
    TestResult,
    assert_covariance,
    assert_unbiased,
    assert_variance,
    covariance_test,
    unbiased_test,
    variance_test,
)

__all__ = ["strategies", "oracles", "assert_unbiased", "assert_covariance", "covariance_test", "assert_variance", "unbiased_test", "variance_test", "TestResult"]


def __getattr__(name):
    if name == "strategies":
        try:
            return importlib.import_module(".strategies", __name__)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("tabularpg.testing.strategies needs hypothesis: "
                              "pip install 'tabularpg[test]'") from exc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
