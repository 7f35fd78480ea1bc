"""Bad arguments of every built-in MDP constructor (tabularpg.envs): the library's error,
naming the argument. Rows are generated from each constructor's good call."""
import inspect

import numpy as np
import pytest
from _bad_inputs import Bad, T, V, bool_, float_, int_, rng_, rows_for, run_param

from tabularpg import envs

GAMMA = float_(0.0, 1.0)
HORIZON = int_(1, none=True)
ROWS = (
    rows_for("garnet", envs.garnet, (4, 2, 2), {}, {
        "n_states": int_(1), "n_actions": int_(1), "branching": int_(1) + Bad(("above-S", 5, V)),
        "gamma": GAMMA, "rng": rng_(), "sparse": bool_(), "reward_scale": float_(0.0), "horizon": HORIZON})
    + rows_for("chain", envs.chain, (4,), {}, {
        "n_states": int_(2), "gamma": GAMMA, "slip": float_(0.0, 1.0), "small": float_(), "large": float_(),
        "horizon": HORIZON})
    + rows_for("gridworld", envs.gridworld, (["S.G"],), {}, {
        "text_map": Bad(("int", 3, T), ("list-of-ints", [1, 2], T), ("ragged", ["S.", "."], V),
                        ("unknown-cell", ["S.X"], V), ("no-start", ["..G"], V)),
        "gamma": GAMMA, "step_reward": float_(), "goal_reward": float_(), "cliff_reward": float_(),
        "wall_reward": Bad(("nan", float("nan"), V), ("complex", 1j, T), ("str", "x", T)),
        "slip": float_(0.0, 1.0),
        "teleports": Bad(("list", [1], T), ("wall-target", {(0, 0): ((5, 5), 1.0)}, V),
                         ("reward-nan", {(0, 0): ((0, 1), float("nan"))}, V)),
        "horizon": HORIZON})
    + rows_for("sutton_barto_gridworld", envs.sutton_barto_gridworld, (), {}, {"gamma": GAMMA})
    + rows_for("cliff_walking", envs.cliff_walking, (), {}, {"gamma": GAMMA, "horizon": HORIZON})
    + rows_for("bandit", envs.bandit, ([1.0, 0.0],), {}, {
        "means": Bad(("str", "1;0", T), ("nan", [np.nan, 0.0], V), ("2d", np.zeros((2, 2)), V),
                     ("empty", [], V), ("complex", [1j, 0.0], T)),
        "gamma": GAMMA})
    + rows_for("two_state", envs.two_state, (), {}, {"gamma": GAMMA})
    + rows_for("make", envs.make, ("two_state",), {}, {
        "spec": Bad(("int", 3, T), ("unknown", "nope", V), ("bad-key", "chain:Q=1", V),
                    ("bad-value", "chain:S=x", V), ("key-without-value", "garnet:S", V),
                    ("missing-npz", "/nonexistent/m.npz", V), ("gym-bad-id", "gym:NoSuchEnv-v0", V),
                    ("gym-bad-option", "gym:FrozenLake-v1:is_slippery", V)),
        "gamma": float_(0.0, 1.0, none=True), "horizon": HORIZON})
)


@pytest.mark.parametrize("fn, call, error, words", ROWS)
def test_bad_argument(fn, call, error, words):
    run_param(fn, call, error, words)


def test_every_public_constructor_has_rows():
    covered = {r.id.split("-")[0] for r in ROWS}
    # every public function with parameters; the constants (ZOO, ALIASES), the exception
    # class and the argument-free functions (discount_counterexample, catalog) have none
    with_args = {n for n in envs.__all__ if inspect.isfunction(getattr(envs, n))
                 and inspect.signature(getattr(envs, n)).parameters}
    assert {"garnet", "make", "bandit"} <= with_args
    assert covered == with_args


def test_make_reports_bad_option_values():
    with pytest.raises(V, match="'S'"):
        envs.make("chain:S=2.5")
    with pytest.raises(V, match="`small`"):
        envs.chain(small=np.nan)
