"""Bad arguments of every estimator entry point (tabularpg.estimators): the library's
error, naming the argument, and the caller's arrays unchanged by a refused call."""
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
    small_problem,
)

import tabularpg as tpg
from tabularpg import estimators as E

MDP_, POL, TH, BATCH = small_problem()
W = BATCH.width
Q = np.zeros((3, 2))
VS = np.zeros(3)
THETA = array(TH, complex_ok=True)
EST = Bad(("int", 3, T), ("unknown", "nope", V))
BASELINE = Bad(("nan", np.nan, V), ("inf", np.inf, V), ("complex", 1j, T), ("shape", np.zeros((2, 2)), SH),
               ("unknown-name", "median", V), ("nan-array", np.full(3, np.nan), V))
CRITIC_Q = Bad(("shape", np.zeros((2, 2)), SH), ("nan", np.full((3, 2), np.nan), V), ("str", "q", T),
               ("complex", np.zeros((3, 2)) + 1j, T))
CRITIC_V = Bad(("shape", np.zeros(4), SH), ("nan", np.full(3, np.nan), V), ("str", "v", T),
               ("short-time", np.zeros((2, 3)), SH))
LAM = float_(0.0, 1.0)

ROWS = []
for name in ("estimate", "step_weights"):
    fn = getattr(E, name)
    ROWS += rows_for(name, fn, (BATCH, POL, TH, "reinforce"), {}, {
        "batch": obj(), "policy": obj(), "theta": THETA, "estimator": EST})
    ROWS += rows_for(f"{name}[baseline]", fn, (BATCH, POL, TH, "reinforce"), {"options": {}}, {})
ROWS += [
    pytest.param(E.estimate, {"batch": BATCH, "policy": tpg.TabularSoftmax(2, 2), "theta": np.zeros((2, 2)),
                              "estimator": "reinforce"}, SH, "`batch`", id="estimate-policy-too-small-for-batch"),
]
for kind in ("reinforce", "reward_to_go", "reward_to_go_undiscounted"):
    ROWS += [pytest.param(getattr(E, kind), {"batch": BATCH, "policy": POL, "theta": TH, "options": {"baseline": b}},
                          err, "`baseline`", id=f"{kind}-baseline-{sub}") for sub, b, err in BASELINE.rows]
    ROWS += rows_for(kind, getattr(E, kind), (BATCH, POL, TH), {}, {"batch": obj(), "policy": obj(), "theta": THETA})
for kind in ("q", "advantage", "all_action"):
    ROWS += [pytest.param(getattr(E, kind), {"batch": BATCH, "policy": POL, "theta": TH, "options": {"critic": c}},
                          err, "`critic`", id=f"{kind}-critic-{sub}") for sub, c, err in CRITIC_Q.rows]
ROWS += [pytest.param(E.advantage, {"batch": BATCH, "policy": POL, "theta": TH,
                                    "options": {"critic": Q, "value": v}}, err, "`value`", id=f"advantage-value-{sub}")
         for sub, v, err in CRITIC_V.rows]
for kind in ("td_residual", "gae"):
    ROWS += [pytest.param(getattr(E, kind), {"batch": BATCH, "policy": POL, "theta": TH, "options": {"critic": c}},
                          err, "`critic`", id=f"{kind}-critic-{sub}") for sub, c, err in CRITIC_V.rows]
ROWS += [pytest.param(E.gae, {"batch": BATCH, "policy": POL, "theta": TH, "options": {"critic": VS, "lam": v}},
                      err, "`lam`", id=f"gae-lam-{sub}") for sub, v, err in LAM.rows if v is not None]
for kind in ("importance_trajectory", "importance_per_decision", "random_horizon"):
    ROWS += rows_for(kind, getattr(E, kind), (BATCH, POL, TH), {}, {"batch": obj(), "policy": obj(), "theta": THETA})
ROWS += [pytest.param(E.importance_trajectory, {"batch": BATCH, "policy": POL, "theta": TH}, V, "`batch`",
                      id="importance_trajectory-batch-without-behavior"),
         pytest.param(E.reinforce, {"batch": BATCH, "policy": POL, "theta": TH, "options": {"lam": 0.5}}, V,
                      "'lam'", id="reinforce-options-unknown")]

ROWS += rows_for("expected_mean_baseline", E.expected_mean_baseline, ("reinforce", MDP_, POL, TH), {"n_episodes": 4}, {
    "estimator": EST, "mdp": obj(), "policy": obj() + Bad(("wrong-size", tpg.TabularSoftmax(2, 2), SH)),
    "theta": THETA, "n_episodes": int_(1), "horizon": int_(1, none=True)})

# expected(): every argument, and every critic option against the MDP's shapes
ROWS += rows_for("expected", E.expected, ("reinforce", MDP_, POL, TH), {}, {
    "estimator": EST, "mdp": obj(), "policy": obj() + Bad(("wrong-size", tpg.TabularSoftmax(2, 2), SH)),
    "theta": THETA, "horizon": int_(1, none=True)})
ROWS += [pytest.param(E.expected, {"estimator": k, "mdp": MDP_, "policy": POL, "theta": TH,
                                   "options": {"critic": c}}, err, "`critic`", id=f"expected-{k}-critic-{sub}")
         for k in ("q", "advantage", "all_action") for sub, c, err in CRITIC_Q.rows]
ROWS += [pytest.param(E.expected, {"estimator": k, "mdp": MDP_, "policy": POL, "theta": TH, "horizon": 4,
                                   "options": {"critic": c}}, err, "`critic`", id=f"expected-{k}-critic-{sub}")
         for k in ("td_residual", "gae") for sub, c, err in CRITIC_V.rows]
ROWS += [pytest.param(E.expected, {"estimator": "gae", "mdp": MDP_, "policy": POL, "theta": TH,
                                   "options": {"critic": VS, "lam": v}}, err, "`lam`", id=f"expected-gae-lam-{sub}")
         for sub, v, err in LAM.rows if v is not None]
ROWS += [pytest.param(E.expected, {"estimator": "reinforce", "mdp": MDP_, "policy": POL, "theta": TH,
                                   "options": {"baseline": "mean", "n_episodes": n}}, err, "`n_episodes`",
                      id=f"expected-n_episodes-{sub}") for sub, n, err in int_(1).rows if n is not None]
ROWS += [pytest.param(E.expected, {"estimator": "advantage", "mdp": MDP_, "policy": POL, "theta": TH,
                                   "options": {"critic": Q, "value": v}}, err, "`value`",
                      id=f"expected-advantage-value-{sub}") for sub, v, err in CRITIC_V.rows[:3]]

# critic fits
ROWS += rows_for("fit_value_mc", E.fit_value_mc, (BATCH, 3), {}, {
    "batch": obj(), "n_states": int_(1) + Bad(("too-few", 2, V)), "time_indexed": bool_()})
ROWS += rows_for("fit_value_td0", E.fit_value_td0, (BATCH, 3), {"v0": VS}, {
    "batch": obj(), "n_states": int_(1) + Bad(("too-few", 2, V)), "alpha": float_(0.0, 1.0),
    "n_sweeps": int_(0), "v0": array(VS)})


@pytest.mark.parametrize("fn, call, error, words", ROWS)
def test_bad_argument(fn, call, error, words):
    run_param(fn, call, error, words)


def test_every_public_function_has_rows():
    covered = {r.id.split("-")[0].split("[")[0] for r in ROWS}
    functions = {n for n in E.__all__ if callable(getattr(E, n)) and not isinstance(getattr(E, n), type)}
    assert functions - covered == set()


def test_expected_refuses_lam_out_of_range_like_estimate():
    with pytest.raises(V, match="`lam`"):
        E.expected("gae", MDP_, POL, TH, critic=VS, lam=5.0)
    with pytest.raises(V, match="`lam`"):
        E.estimate(BATCH, POL, TH, "gae", critic=VS, lam=2.0)


ESTIMATOR_METHOD_ROWS = (
    rows_for("Estimator.weights", E.REGISTRY["reinforce"].weights, (BATCH, POL, TH), {}, {
        "batch": obj(), "policy": obj(), "theta": THETA})
    + rows_for("Estimator.expected", E.REGISTRY["reinforce"].expected, (MDP_, POL, TH), {}, {
        "mdp": obj(), "policy": obj() + Bad(("wrong-size", tpg.TabularSoftmax(2, 2), SH)), "theta": THETA,
        "horizon": int_(1, none=True)})
    + rows_for("expected_mean_baseline", E.expected_mean_baseline, ("reinforce", MDP_, POL, TH), {"n_episodes": 4}, {
        "estimator": EST, "n_episodes": int_(1)})
)


@pytest.mark.parametrize("fn, call, error, words", ESTIMATOR_METHOD_ROWS)
def test_bad_argument_of_registry_methods(fn, call, error, words):
    run_param(fn, call, error, words)
