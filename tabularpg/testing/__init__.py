"""Testing tools for users' own estimators.

* :func:`assert_unbiased`, :func:`assert_variance`, :func:`assert_covariance` — statistical
  assertions with a stated false-alarm rate (:mod:`tabularpg.testing.assertions`);
* :func:`check_estimator`, :func:`parametrize_with_checks` — one call that tests an
  estimator on a battery of problems against exact targets (:mod:`tabularpg.testing.check`);
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
from .check import (
    CheckResult,
    EstimatorCheckError,
    check_estimator,
    parametrize_with_checks,
)

__all__ = ["CheckResult", "EstimatorCheckError", "TestResult", "assert_covariance", "assert_unbiased",
           "assert_variance", "check_estimator", "covariance_test", "oracles", "parametrize_with_checks",
           "strategies", "unbiased_test", "variance_test"]


def __getattr__(name):
    if name == "strategies":
        try:
            return importlib.import_module(".strategies", __name__)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("tabularpg.testing.strategies needs hypothesis: "
                              "pip install 'tabularpg[test]'") from exc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
