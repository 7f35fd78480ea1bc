"""Testing tools for users' own estimators.

* :mod:`tabularpg.testing.strategies` — hypothesis strategies (``mdps``, ``policies``,
  ``thetas``, ``problems``); needs the ``hypothesis`` package (``tabularpg[test]``).
"""
import importlib

__all__ = ["strategies"]


def __getattr__(name):
    if name == "strategies":
        try:
            return importlib.import_module(".strategies", __name__)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("tabularpg.testing.strategies needs hypothesis: "
                              "pip install 'tabularpg[test]'") from exc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
