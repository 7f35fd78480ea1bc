"""Bad arguments of the objectives (tabularpg.objectives) and the optimizers
(tabularpg.optim): the library's error, naming the argument, raised before the first
iteration, and the caller's arrays unchanged by a refused call."""
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

from tabularpg import objectives as O
from tabularpg import optim

MDP_, POL, TH, BATCH = small_problem()
PI = POL.probs(TH)
POLICY, THETA, PI_BAD = shared_bads(TH)
SUR = O.Surrogate.at(MDP_, POL, TH)
ADV = np.zeros(BATCH.states.shape)
POSITIVE = float_(0.0, low_open=True)
PROGRESS = Bad(("str", "tqdm", T))
HORIZON = Bad(*[r for r in int_(1, none=True).rows if r[0] != "str"], ("unknown-str", "never", V))
ESTIMATOR = Bad(("int", 3, T), ("unknown", "nope", V))
N_ITER = int_(0)

OBJECTIVE_ROWS = (
    rows_for("entropy_analyze", O.entropy_analyze, (MDP_, PI, 0.1), {},
             {"mdp": obj(), "pi": PI_BAD, "tau": float_(0.0)})
    + rows_for("entropy_objective", O.entropy_objective, (MDP_, PI, 0.1), {}, {
        "mdp": obj(), "pi": PI_BAD, "tau": float_(0.0)})
    + rows_for("entropy_policy_gradient", O.entropy_policy_gradient, (MDP_, POL, TH, 0.1), {}, {
        "mdp": obj(), "policy": POLICY, "theta": THETA, "tau": float_(0.0)})
    + rows_for("soft_value_iteration", O.soft_value_iteration, (MDP_, 0.1), {}, {
        "mdp": obj(), "tau": POSITIVE, "tol": float_(0.0), "max_iter": int_(1)})
    + rows_for("Surrogate.at", O.Surrogate.at, (MDP_, POL, TH), {},
               {"mdp": obj(), "policy": POLICY, "theta_old": THETA})
    + [r for n in ("surrogate", "expected_kl")
       for r in rows_for(n, getattr(O, n), (SUR, POL, TH), {}, {"sur": obj(), "policy": POLICY, "theta": THETA})]
    + rows_for("kl_hvp", O.kl_hvp, (SUR, POL, TH, np.ones((3, 2))), {}, {
        "sur": obj(), "policy": POLICY, "theta": THETA, "v": array(TH, complex_ok=True)})
    + rows_for("ppo_clip", O.ppo_clip, (SUR, POL, TH), {}, {
        "sur": obj(), "policy": POLICY, "theta": THETA, "clip": POSITIVE})
    + rows_for("kl_penalized", O.kl_penalized, (SUR, POL, TH), {"beta": 1.0}, {
        "sur": obj(), "policy": POLICY, "theta": THETA, "beta": float_(0.0)})
    + rows_for("sample_surrogate_weights", O.sample_surrogate_weights, (BATCH, POL, TH, PI, ADV), {}, {
        "batch": obj(), "policy": POLICY, "theta": THETA, "pi_old": PI_BAD, "advantages": array(ADV),
        "clip": Bad(("nan", np.nan, V), ("zero", 0.0, V), ("str", "c", T)), "discount": bool_()})
    + rows_for("sample_kl_weights", O.sample_kl_weights, (BATCH, PI), {}, {
        "batch": obj(), "pi_old": PI_BAD, "discount": bool_()})
)

COMMON = {"mdp": obj(), "policy": POLICY, "theta0": array(TH), "n_iter": N_ITER, "progress": PROGRESS}
PI_REF = np.full((3, 2), 0.5)
REWARD = np.zeros((3, 2))
MU = np.full(3, 1 / 3)
PREFS = (np.array([0, 1]), np.array([0, 1]), np.array([1, 0]))
PREFS_BAD = Bad(("str", "p", T), ("pair", PREFS[:2], T), ("float", (np.zeros(2), PREFS[1], PREFS[2]), T),
                ("out-of-range", (np.array([0, 5]), PREFS[1], PREFS[2]), V),
                ("ragged", (PREFS[0], np.array([0]), PREFS[2]), SH))
DPO_TABLES = {"pi_ref": PI_BAD, "reward": array(REWARD), "mu": array(MU)}
OPTIM_ROWS = (
    rows_for("policy_gradient_ascent", optim.policy_gradient_ascent, (MDP_, POL, TH), {"step_size": 0.1, "n_iter": 1}, {
        **COMMON, "step_size": POSITIVE, "estimator": ESTIMATOR, "n_episodes": int_(1), "horizon": HORIZON,
        "rng": rng_(), "tau": float_(0.0)})
    + rows_for("natural_policy_gradient", optim.natural_policy_gradient, (MDP_, POL, TH),
               {"step_size": 0.1, "n_iter": 1}, {
                   **COMMON, "step_size": POSITIVE, "tau": float_(0.0), "closed_form": bool_(),
                   "damping": float_(0.0)})
    + rows_for("conjugate_gradient", optim.conjugate_gradient, (lambda v: v, np.ones(3)), {}, {
        "matvec": Bad(("str", "F", T)), "b": Bad(("str", "b", T), ("nan", np.full(3, np.nan), V)),
        "n_iter": int_(1), "tol": float_(0.0)})
    + rows_for("trpo", optim.trpo, (MDP_, POL, TH), {"n_iter": 1}, {
        **COMMON, "delta": POSITIVE, "cg_iters": int_(1), "backtrack": float_(0.0, 1.0, True, True),
        "max_backtracks": int_(1), "estimator": ESTIMATOR, "n_episodes": int_(1), "horizon": HORIZON,
        "rng": rng_()})
    + rows_for("ppo", optim.ppo, (MDP_, POL, TH), {"n_iter": 1}, {
        **COMMON, "epochs": int_(1), "lr": POSITIVE, "clip": float_(0.0, 1.0, True, True), "adaptive_kl": bool_(),
        "kl_target": POSITIVE, "beta0": POSITIVE, "n_episodes": int_(1, none=True), "horizon": HORIZON,
        "rng": rng_()})
    + rows_for("rloo", optim.rloo, (MDP_, POL, TH), {"n_iter": 1, "step_size": 0.1}, {
        **COMMON, "k": int_(2), "step_size": POSITIVE, "horizon": HORIZON, "rng": rng_()})
    + rows_for("actor_critic", optim.actor_critic, (MDP_, POL, TH), {"n_iter": 1, "step_size": 0.1}, {
        **COMMON, "step_size": POSITIVE, "n_episodes": int_(1), "horizon": HORIZON, "rng": rng_(),
        "critic_lr": float_(0.0, 1.0, low_open=True), "critic_sweeps": int_(1)})
    + rows_for("sample_preferences", optim.sample_preferences, (REWARD, PI_REF, MU, 4), {"rng": 0}, {
        **DPO_TABLES, "n": int_(1), "rng": rng_()})
    + rows_for("dpo_loss", optim.dpo_loss, (POL, TH, PI_REF, PREFS), {"beta": 0.5}, {
        "policy": POLICY, "theta": THETA, "pi_ref": PI_BAD, "prefs": PREFS_BAD, "beta": POSITIVE})
    + rows_for("dpo_population_loss", optim.dpo_population_loss, (POL, TH, PI_REF, REWARD, MU), {"beta": 0.5}, {
        "policy": POLICY, "theta": THETA, **DPO_TABLES, "beta": POSITIVE})
    + rows_for("dpo_optimal_policy", optim.dpo_optimal_policy, (PI_REF, REWARD), {"beta": 0.5}, {
        "pi_ref": PI_BAD, "reward": array(REWARD), "beta": POSITIVE})
    + rows_for("dpo", optim.dpo, (POL, TH, PI_REF), {"beta": 0.5, "n_iter": 1, "lr": 0.1, "prefs": PREFS}, {
        "policy": POLICY, "theta0": array(TH), "pi_ref": PI_BAD, "beta": POSITIVE, "n_iter": N_ITER, "lr": POSITIVE,
        "prefs": PREFS_BAD, "progress": PROGRESS})
)


@pytest.mark.parametrize("fn, call, error, words", OBJECTIVE_ROWS + OPTIM_ROWS)
def test_bad_argument(fn, call, error, words):
    run_param(fn, call, error, words)


@pytest.mark.parametrize("module, rows", [(O, OBJECTIVE_ROWS), (optim, OPTIM_ROWS)], ids=["objectives", "optim"])
def test_every_public_function_has_rows(module, rows):
    covered = {r.id.split("-")[0].split(".")[0] for r in rows}
    functions = {n for n in module.__all__ if callable(getattr(module, n)) and not isinstance(getattr(module, n), type)}
    assert functions - covered == set()


def test_messages_name_the_argument_as_passed():
    with pytest.raises(V, match="`critic_lr`"):
        optim.actor_critic(MDP_, POL, TH, n_iter=1, step_size=0.1, critic_lr=2)
    with pytest.raises(V, match="`step_size` must be > 0"):
        optim.policy_gradient_ascent(MDP_, POL, TH, step_size=0.0, n_iter=1)
    with pytest.raises(V, match=r"`clip` must lie in \(0.0, 1.0\)"):
        optim.ppo(MDP_, POL, TH, n_iter=1, clip=0.0)


def test_refused_optimizer_runs_no_iteration():
    calls = []

    def progress(it):
        calls.append(1)
        return it

    with pytest.raises(V, match="`critic_sweeps`"):
        optim.actor_critic(MDP_, POL, TH, n_iter=3, step_size=0.1, critic_sweeps=-1, progress=progress)
    assert calls == []
