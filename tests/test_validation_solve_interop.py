"""Bad arguments of the optimal-control solvers, the interop converters and the public
hypothesis strategies: the library's error, naming the argument."""
import numpy as np
import pytest
from _bad_inputs import (
    SH,
    Bad,
    T,
    V,
    array,
    bool_,
    float_,
    int_,
    obj,
    rows_for,
    run_param,
    seq,
)

from tabularpg import envs, interop, solve
from tabularpg.testing import strategies

M = envs.garnet(3, 2, 2, rng=0, gamma=0.8)
MH = envs.garnet(3, 2, 2, rng=0, gamma=0.8, horizon=3)
KINDS = seq() + Bad(("unknown", ["continuing"], V), ("empty", [], V))

SOLVE_ROWS = (
    rows_for("value_iteration", solve.value_iteration, (M,), {}, {
        "mdp": obj(), "tol": float_(0.0, low_open=True), "max_iter": int_(1)})
    + rows_for("policy_iteration", solve.policy_iteration, (M,), {}, {"mdp": obj(), "max_iter": int_(1)})
    + rows_for("linear_program", solve.linear_program, (M,), {}, {"mdp": obj()})
    + rows_for("backward_induction", solve.backward_induction, (MH,), {}, {"mdp": obj() + Bad(("infinite", M, V))})
    + rows_for("greedy", solve.greedy, (np.zeros((3, 2)),), {}, {
        "q": Bad(("str", "q", T), ("nan", np.full((3, 2), np.nan), V), ("complex", np.zeros((3, 2)) + 1j, T),
                 ("empty", np.zeros((3, 0)), V))})
    + rows_for("bellman_optimality_residual", solve.bellman_optimality_residual, (M, np.zeros(3)), {}, {
        "mdp": obj() + Bad(("finite-horizon", MH, V)), "v": array(np.zeros(3))})
)

INTEROP_ROWS = (
    rows_for("from_gymnasium", interop.from_gymnasium, (None,), {}, {
        "env": Bad(("id-string", "FrozenLake-v1", T), ("none", None, T), ("int", 3, T)),
        "gamma": float_(0.0, 1.0),
        "horizon": Bad(*[r for r in int_(1, none=True).rows if r[0] != "str"], ("unknown-str", "never", V))})
    + rows_for("to_gymnasium", interop.to_gymnasium, (M,), {}, {"mdp": obj(), "seed": int_(0, none=True)})
    + rows_for("to_mdptoolbox", interop.to_mdptoolbox, (M,), {}, {"mdp": obj()})
    + rows_for("from_mdptoolbox", interop.from_mdptoolbox, (np.transpose(M.P, (1, 0, 2)), M.r_sa), {}, {
        "P": Bad(("str", "P", T), ("nan", np.full((2, 3, 3), np.nan), V), ("2d", np.ones((3, 3)), SH),
                 ("ragged-list", [np.eye(3), np.eye(2)], SH), ("empty-list", [], SH)),
        "R": Bad(("str", "R", T), ("shape", np.zeros((4, 4)), SH), ("nan", np.full((3, 2), np.nan), V)),
        "mu": array(np.full(3, 1 / 3)), "gamma": float_(0.0, 1.0), "horizon": int_(1, none=True)})
)

STRATEGY_ROWS = (
    rows_for("mdps", strategies.mdps, (), {}, {
        "min_states": int_(1), "max_states": int_(1) + Bad(("below-min", 0, V)), "min_actions": int_(1),
        "max_actions": int_(1), "kinds": KINDS, "gamma": float_(0.0, 1.0, none=True), "max_horizon": int_(1),
        "reward_transitions": bool_(), "sparse": bool_()})
    + rows_for("policies", strategies.policies, (3, 2), {}, {
        "n_states": int_(1), "n_actions": int_(1), "kinds": KINDS, "max_features": int_(1)})
    + rows_for("thetas", strategies.thetas, (envs and __import__("tabularpg").TabularSoftmax(2, 2),), {}, {
        "policy": obj(), "scale": float_(0.0)})
    + rows_for("problems", strategies.problems, (), {}, {"policy_kinds": KINDS, "scale": float_(0.0)})
    + rows_for("distributions", strategies.distributions, (3,), {}, {
        "n": int_(1), "min_prob": float_(0.0, 1.0 / 3), "sparsity": bool_()})
)


@pytest.mark.parametrize("fn, call, error, words", SOLVE_ROWS + INTEROP_ROWS + STRATEGY_ROWS)
def test_bad_argument(fn, call, error, words):
    run_param(fn, call, error, words)


@pytest.mark.parametrize("module, rows", [(solve, SOLVE_ROWS), (interop, INTEROP_ROWS),
                                          (strategies, STRATEGY_ROWS)], ids=["solve", "interop", "strategies"])
def test_every_public_function_has_rows(module, rows):
    covered = {r.id.split("-")[0] for r in rows}
    functions = {n for n in module.__all__ if callable(getattr(module, n)) and not isinstance(getattr(module, n), type)}
    assert functions - covered == set()


def test_problems_refuses_unknown_mdp_options():
    with pytest.raises(T, match="mdp_options"):
        strategies.problems(n_states=3)
    with pytest.raises(V, match="`min_states`=3 is larger than `max_states`=2"):
        strategies.mdps(min_states=3, max_states=2)
