"""Bad arguments of the exact solvers (tabularpg.exact), the sampler (tabularpg.sampling),
exact moments (tabularpg.moments) and the derivative oracles: the library's error, naming
the argument, and the caller's arrays unchanged by a refused call."""
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
    rng_,
    rows_for,
    run_param,
    shared_bads,
    small_problem,
)

import tabularpg as tpg
from tabularpg import exact, moments, sampling
from tabularpg.testing import oracles

MDP_, POL, TH, BATCH = small_problem()
PI = POL.probs(TH)
SMALL = tpg.TabularSoftmax(2, 2)
POLICY, THETA, PI_BAD = shared_bads(TH)
PI_BAD = PI_BAD + Bad(("negative", np.array([[1.5, -0.5]] * 3), V))
EV = exact.analyze(MDP_, PI)
PROBE = lambda th: float(np.sum(np.asarray(th) ** 2))

EXACT_ROWS = (
    rows_for("analyze", exact.analyze, (MDP_, PI), {}, {
        "mdp": obj(), "pi": PI_BAD, "rtol": float_(0.0, 1.0), "occupancy": bool_(),
        "reward": array(np.zeros((3, 2)), complex_ok=True)})
    + [r for n in ("evaluate", "advantage", "occupancy", "objective", "expected_steps")
       for r in rows_for(n, getattr(exact, n), (MDP_, PI), {}, {"mdp": obj(), "pi": PI_BAD})]
    + rows_for("expected_weights", exact.expected_weights, (EV, PI), {}, {
        "ev": obj(), "pi": array(PI, complex_ok=True)})
    + rows_for("policy_gradient", exact.policy_gradient, (MDP_, POL, TH), {}, {
        "mdp": obj(), "policy": POLICY, "theta": THETA})
    + rows_for("fisher", exact.fisher, (MDP_, POL, TH), {}, {"mdp": obj(), "policy": POLICY, "theta": THETA})
    + rows_for("fisher_vector_product", exact.fisher_vector_product, (MDP_, POL, TH, np.ones((3, 2))), {}, {
        "mdp": obj(), "policy": POLICY, "theta": THETA, "v": array(TH, complex_ok=True), "d": array(np.ones(3))})
    + rows_for("natural_gradient", exact.natural_gradient, (MDP_, POL, TH), {}, {
        "mdp": obj(), "policy": POLICY, "theta": THETA, "damping": float_(0.0)})
)

SAMPLING_ROWS = (
    rows_for("sample", sampling.sample, (MDP_, POL, TH, 4), {"rng": 0, "horizon": 3}, {
        "mdp": obj(), "policy": POLICY, "theta": array(TH), "n_episodes": int_(1), "rng": rng_(),
        "horizon": Bad(*[r for r in int_(1, none=True).rows if r[0] != "str"], ("unknown-str", "never", V)),
        "start": Bad(("float", 0.5, V), ("out-of-range", 7, V), ("wrong-count", np.array([0, 1]), V)),
        "behavior": Bad(*[r for r in PI_BAD.rows], ("tuple-wrong-size", (SMALL, np.zeros((2, 2))), SH),
                        ("complex", PI + 0j, T), ("tuple-nan-theta", (POL, np.full((3, 2), np.nan)), V),
                        ("triple", (POL, TH, TH), T))})
    + rows_for("alias_table", sampling.alias_table, (np.full((2, 2), 0.5),), {}, {
        "probs": Bad(("str", "p", T), ("nan", np.full((2, 2), np.nan), V), ("1d", np.array([0.5, 0.5]), SH),
                     ("not-summing", np.full((2, 2), 0.4), V), ("negative", np.array([[1.5, -0.5]]), V),
                     ("complex", np.full((2, 2), 0.5 + 0j), T), ("empty-rows", np.zeros((2, 0)), SH)),
        "values": Bad(("float", np.zeros((2, 2)), T), ("shape", np.zeros((2, 3), dtype=int), SH),
                      ("str", "v", T))})
    + rows_for("Batch.select", BATCH.select, (np.array([0, 1]),), {}, {
        "episodes": Bad(("out-of-range", np.array([0, 9]), V), ("float", np.array([0.0, 1.0]), T),
                        ("mask-length", np.array([True, False]), SH))})
)

HORIZON = Bad(*[r for r in int_(1, none=True).rows if r[0] != "str"], ("unknown-str", "never", V))
METHOD = Bad(("unknown", "fast", V), ("int", 1, V))
ESTIMATOR = Bad(("int", 3, T), ("unknown", "nope", V))

MOMENT_ROWS = (
    rows_for("enumerate_trajectories", moments.enumerate_trajectories, (MDP_, PI, 2), {}, {
        "mdp": obj(), "pi": PI_BAD, "horizon": int_(1, none=True), "max_trajectories": int_(1),
        "behavior": PI_BAD})
    + rows_for("exact_moments", moments.exact_moments, (MDP_, POL, TH, "reinforce", 2), {}, {
        "mdp": obj(), "policy": POLICY, "theta": THETA, "estimator": ESTIMATOR, "horizon": HORIZON,
        "method": METHOD, "behavior": PI_BAD, "max_trajectories": int_(1)})
    + rows_for("exact_batch_moments", moments.exact_batch_moments, (MDP_, POL, TH, "reward_to_go", 3), {
        "n_episodes": 4, "baseline": "leave_one_out"}, {
        "mdp": obj(), "policy": POLICY, "theta": THETA, "estimator": ESTIMATOR + Bad(("no-batch-baseline", "q", V)),
        "horizon": HORIZON, "n_episodes": int_(1), "baseline": Bad(("unknown", "median", V), ("optimal", "optimal", V),
                                                                    ("array", np.zeros(3), V))})
    + rows_for("optimal_baseline", moments.optimal_baseline, (MDP_, POL, TH, "reinforce", 2), {}, {
        "mdp": obj(), "policy": POLICY, "theta": THETA, "estimator": ESTIMATOR + Bad(("no-baseline", "q", V)),
        "horizon": HORIZON, "kind": Bad(("unknown", "action", V), ("int", 0, V)), "method": METHOD,
        "per_component": bool_(), "max_trajectories": int_(1)})
    + rows_for("baseline_quadratic", moments.baseline_quadratic, (MDP_, POL, TH, "reward_to_go", 2), {}, {
        "mdp": obj(), "policy": POLICY, "theta": THETA, "estimator": ESTIMATOR + Bad(("no-baseline", "gae", V)),
        "horizon": HORIZON, "kind": Bad(("constant", "constant", V), ("int", 1, V))})
    + rows_for("recursion_checks", moments.recursion_checks, (), {}, {"seed": int_(0)})
)

ORACLE_ROWS = (
    rows_for("complex_step_gradient", oracles.complex_step_gradient, (PROBE, TH), {}, {
        "f": Bad(("str", "f", T)), "theta": Bad(("str", "t", T), ("nan", np.full(2, np.nan), V)),
        "h": float_(0.0, low_open=True)})
    + rows_for("central_difference_gradient", oracles.central_difference_gradient, (PROBE, TH), {}, {
        "f": Bad(("str", "f", T)), "theta": Bad(("str", "t", T), ("complex", TH + 1j, T)),
        "h": float_(0.0, low_open=True)})
    + rows_for("objective_of", oracles.objective_of, (MDP_, POL), {}, {"mdp": obj(), "policy": POLICY})
)


@pytest.mark.parametrize("fn, call, error, words", EXACT_ROWS + SAMPLING_ROWS + MOMENT_ROWS + ORACLE_ROWS)
def test_bad_argument(fn, call, error, words):
    run_param(fn, call, error, words)


@pytest.mark.parametrize("module, rows", [(exact, EXACT_ROWS), (sampling, SAMPLING_ROWS), (moments, MOMENT_ROWS),
                                          (oracles, ORACLE_ROWS)], ids=["exact", "sampling", "moments", "oracles"])
def test_every_public_function_has_rows(module, rows):
    covered = {r.id.split("-")[0] for r in rows}
    functions = {n for n in module.__all__ if callable(getattr(module, n)) and not isinstance(getattr(module, n), type)}
    assert functions - covered == set()


def test_alias_table_refuses_rows_that_are_not_distributions():
    with pytest.raises(V, match=r"`probs` row 1 sums to 0.9"):
        sampling.alias_table(np.array([[0.5, 0.5], [0.6, 0.3]]))


def test_behavior_policy_of_the_wrong_size_is_refused():
    with pytest.raises(SH, match="`behavior`"):
        sampling.sample(MDP_, POL, TH, 3, rng=0, horizon=2, behavior=(SMALL, np.zeros((2, 2))))
    with pytest.raises(SH, match="`behavior`"):
        sampling.sample(MDP_, POL, TH, 3, rng=0, horizon=2, behavior=np.full((2, 2), 0.5))
