"""``check_estimator`` passes every registered unbiased estimator and catches broken ones.

Oracle: the exact gradient of the batch's objective (``tabularpg.exact``), Hotelling tests
with family-wise false-alarm rate 1e-6 (Holm), fixed seeds. Each broken estimator below
is biased on some case of the battery (or non-finite), and the failure must name a case.
"""
import numpy as np
import pytest

from tabularpg import estimators
from tabularpg.estimators import REGISTRY, StepWeights, _discounted_to_go
from tabularpg.testing import check_estimator, parametrize_with_checks
from tabularpg.testing.check import CASES, EstimatorCheckError

UNBIASED = sorted(name for name, est in REGISTRY.items() if est.unbiased)


@pytest.mark.parametrize("name", UNBIASED)
def test_registered_unbiased_estimators_pass(name):
    res = check_estimator(name)
    assert res.passed
    text = str(res)
    for case in CASES:
        assert case in text


def test_registered_function_is_recognized():
    res = check_estimator(estimators.reinforce, cases=["single_state", "terminal_gamma1"])
    assert res.passed and len(res.rows) == 2


# ----------------------------------------------------------------------------- broken ones
def _action_baseline(batch, policy, theta):
    """Reward-to-go minus a baseline equal to the episode's own action index: biased."""
    G = _discounted_to_go(batch.rewards, batch.gamma)
    c = batch.discounts() * (G - 1.0 * batch.actions)
    return StepWeights(np.where(batch.alive, c, 0.0))


def _skip_first_reward(batch, policy, theta):
    """REINFORCE with the return R - r_0 (skips the first reward): biased."""
    R = batch.returns() - batch.rewards[:, 0]
    return StepWeights(np.where(batch.alive, R[:, None], 0.0))


def _drop_last_step(batch, policy, theta):
    """REINFORCE whose score sum omits the last alive step: biased."""
    last = np.arange(batch.width)[None, :] == (batch.lengths - 1)[:, None]
    R = batch.returns()
    return StepWeights(np.where(batch.alive & ~last, R[:, None], 0.0))


def _nan_on_one_episode(batch, policy, theta):
    """REINFORCE, per-episode output (N, *theta_shape), NaN on one episode."""
    X = estimators.estimate(batch, policy, theta, "reinforce").samples.copy()
    X[batch.n_episodes // 2] = np.nan
    return X.reshape((batch.n_episodes,) + tuple(policy.theta_shape))


BROKEN = {
    "reward_to_go_undiscounted": (estimators.reward_to_go_undiscounted, "mean differs"),
    "baseline_on_own_action": (_action_baseline, "mean differs"),
    "skips_first_reward": (_skip_first_reward, "mean differs"),
    "drops_last_step": (_drop_last_step, "mean differs"),
    "nan_on_one_episode": (_nan_on_one_episode, "non-finite estimates in 1 episode"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_estimators_fail_naming_the_case(name):
    fn, why = BROKEN[name]
    with pytest.raises(EstimatorCheckError, match=r"fails case '(\w+)'") as info:
        check_estimator(fn)
    msg = str(info.value)
    assert why in msg and "Reproduce: check_estimator(fn" in msg
    failing = msg.split("fails case '")[1].split("'")[0]
    assert failing in CASES
    # the named case fails again on its own, with the stated reproduction
    res = check_estimator(fn, cases=[failing], raise_on_failure=False)
    assert not res.passed


def test_undiscounted_passes_where_gamma_is_one():
    """reward_to_go_undiscounted is unbiased when gamma = 1: the check must not flag it there."""
    res = check_estimator(estimators.reward_to_go_undiscounted, cases=["terminal_gamma1", "geometric_horizon"],
                          raise_on_failure=False)
    assert res.passed
    res = check_estimator(estimators.reward_to_go_undiscounted, cases=["deterministic_transitions"],
                          raise_on_failure=False)
    assert not res.passed and res.failures[0].bias_se > 5


def test_target_by_name_and_callable():
    from tabularpg.estimators import expected
    assert check_estimator(estimators.reward_to_go_undiscounted, target="reward_to_go_undiscounted").passed
    tgt = lambda mdp, pol, theta, H: expected("reward_to_go_undiscounted", mdp, pol, theta, horizon=H)
    assert check_estimator(estimators.reward_to_go_undiscounted, target=tgt, cases=["linear_policy"]).passed


def test_wrong_shape_fails():
    def flat_wrong(batch, policy, theta):
        return np.zeros((batch.n_episodes, policy.n_params + 1))
    res = check_estimator(flat_wrong, cases=["single_state"], raise_on_failure=False)
    assert not res.passed and "shape" in res.rows[0].message


def test_bad_arguments():
    from tabularpg._validation import ValidationError
    with pytest.raises(ValidationError, match="unknown case"):
        check_estimator("reinforce", cases=["nope"])
    with pytest.raises(ValidationError, match="alpha"):
        check_estimator("reinforce", alpha=0.0)
    with pytest.raises(ValidationError, match="target"):
        check_estimator("reinforce", target="nope")


@parametrize_with_checks([estimators.reinforce, _skip_first_reward],
                         cases=["single_state", "deterministic_transitions"])
def test_parametrize_with_checks(estimator, check):
    if estimator is _skip_first_reward:
        with pytest.raises(EstimatorCheckError):
            check(estimator)
    else:
        check(estimator)


def test_crashing_and_nan_weight_estimators_fail_with_a_reason():
    def crashes(batch, policy, theta):
        raise RuntimeError("boom")

    def nan_weights(batch, policy, theta):
        w = estimators.reinforce(batch, policy, theta)
        v = w.values.copy()
        v[3, 0] = np.nan
        return StepWeights(v)

    res = check_estimator(crashes, cases=["single_state"], raise_on_failure=False)
    assert not res.passed and "raised RuntimeError: boom" in res.rows[0].message
    res = check_estimator(nan_weights, cases=["single_state"], raise_on_failure=False)
    assert not res.passed and "non-finite weights in 1 episode(s) (first: [3])" in res.rows[0].message


def test_generator_rng_and_reproducible_seed():
    a = check_estimator("reinforce", cases=["single_state"], rng=7)
    b = check_estimator("reinforce", cases=["single_state"], rng=7)
    assert a.rows[0].statistic == b.rows[0].statistic
    c = check_estimator("reinforce", cases=["single_state"], rng=np.random.default_rng(7))
    assert c.passed
