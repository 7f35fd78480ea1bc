"""Bad arguments of the public verification entry points (tabularpg.verify): the
library's error, naming the argument."""
import pytest
from _bad_inputs import Bad, T, bool_, int_, rows_for, run_param

from tabularpg import envs, verify

MDPS = Bad(("list", [envs.two_state()], T), ("non-mdp-value", {"a": "two_state"}, T), ("str", "two_state", T))
ROWS = (
    rows_for("exact_checks", verify.exact_checks, (), {}, {"mdps": MDPS, "seed": int_(0)})
    + rows_for("solver_checks", verify.solver_checks, (), {}, {"mdps": MDPS})
    + rows_for("run", verify.run, (), {}, {"seed": int_(0), "monte_carlo": bool_(), "quick": bool_(), "mdps": MDPS})
)


@pytest.mark.parametrize("fn, call, error, words", ROWS)
def test_bad_argument(fn, call, error, words):
    run_param(fn, call, error, words)
