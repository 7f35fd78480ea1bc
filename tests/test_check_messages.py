"""check_estimator's failure message, read by someone whose estimator just failed: the
numbers behind the verdict, every failing case, and how to rebuild the case."""
import pytest

import tabularpg as tpg
from tabularpg.testing import EstimatorCheckError, check_estimator


def _five_percent_too_large(batch, policy, theta):
    return tpg.estimate(batch, policy, theta, "reward_to_go").samples * 1.05


def test_failure_message_gives_the_numbers_and_every_failing_case():
    with pytest.raises(EstimatorCheckError) as info:
        check_estimator(_five_percent_too_large)
    first_line = str(info.value).splitlines()[0]
    res = check_estimator(_five_percent_too_large, raise_on_failure=False)
    first, *others = res.failures
    assert others, "a 5% scale error should fail more than one case at N = 10000"
    assert f"fails case '{first.case}'" in first_line
    assert f"p = {first.p_value:.3g} < Holm level {first.threshold:.3g}" in first_line
    assert f"{first.bias_se:.3g} standard errors" in first_line
    assert first_line.endswith(f"Also failing: {', '.join(r.case for r in others)}.")
    assert f"(mdp, policy, theta, horizon) are tabularpg.testing.check.CASES['{first.case}'].build()" \
        in str(info.value)


def test_passing_estimator_raises_nothing():
    assert check_estimator("reward_to_go", cases=["single_state", "linear_policy"], n_episodes=2000).passed


@pytest.mark.parametrize("name", ["q", "advantage", "gae", "td_residual"])
def test_registered_critic_estimators_get_the_exact_critic(name):
    """By name, a critic estimator is checked with the exact critic of each case's
    truncated objective (unbiased there); without one it could only raise."""
    res = check_estimator(name, n_episodes=2000, cases=["discounted_finite_horizon", "linear_policy"],
                          raise_on_failure=False)
    assert res.passed, str(res)


def test_a_deterministic_estimate_equal_to_the_target_passes_and_one_off_by_1e_6_fails():
    from tabularpg.sweep import _estimator_setup
    from tabularpg.testing.check import CASES

    res = check_estimator("all_action", cases=["single_state"], n_episodes=2000, raise_on_failure=False)
    assert res.passed and "equals the target in every episode" in res.rows[0].message
    mdp, pol, theta, H = CASES["single_state"].build()
    q = _estimator_setup("all_action", mdp, H, pol, theta)[1]["critic"]

    def off(batch, policy, theta):      # deterministic, 1e-6 relative bias
        return tpg.estimate(batch, policy, theta, "all_action", critic=q * (1 + 1e-6)).samples

    res = check_estimator(off, cases=["single_state"], n_episodes=2000, raise_on_failure=False)
    assert not res.passed
