"""Contract tests that every policy class must pass.

Oracles: complex-step derivative of ``log_probs`` (score), exact summation over actions
(zero-mean score), and a brute-force loop of per-sample scores (contraction).
Enrolling a new class takes one line in ``POLICY_FACTORIES``.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from tabularpg import LinearSoftmax, NeuralSoftmax, ShapeError, TabularSoftmax, ValidationError

POLICY_FACTORIES = {
    "tabular": lambda S, A, rng: TabularSoftmax(S, A),
    "linear": lambda S, A, rng: LinearSoftmax(rng.normal(size=(S, A, 3))),
    "linear_one_hot": lambda S, A, rng: LinearSoftmax.one_hot(S, A),
    "neural_sa_tanh": lambda S, A, rng: NeuralSoftmax(rng.normal(size=(S, A, 3)), hidden=(5, 4)),
    "neural_state_relu": lambda S, A, rng: NeuralSoftmax(rng.normal(size=(S, 3)), hidden=(6,),
                                                         activation="relu", n_actions=A),
}

H = 1e-30  # complex step


def _setup(name, seed, S=4, A=3):
    rng = np.random.default_rng(seed)
    pol = POLICY_FACTORIES[name](S, A, rng)
    theta = rng.normal(scale=2.0, size=pol.theta_shape)
    return pol, theta, rng


def _complex_step_log_probs(pol, theta):
    """d log pi(a|s) / d theta_i by complex step, shape (S, A, n_params)."""
    cols = []
    for e in np.eye(pol.n_params):
        cols.append(pol.log_probs(theta + 1j * H * e.reshape(pol.theta_shape)).imag / H)
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("name", sorted(POLICY_FACTORIES))
@given(seed=st.integers(0, 2**31))
def test_score_equals_complex_step(name, seed):
    pol, theta, _ = _setup(name, seed)
    oracle = _complex_step_log_probs(pol, theta)
    S, A = pol.n_states, pol.n_actions
    s, a = np.meshgrid(np.arange(S), np.arange(A), indexing="ij")
    score = pol.score(theta, s, a).reshape(S, A, -1)
    np.testing.assert_allclose(score, oracle, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", sorted(POLICY_FACTORIES))
@given(seed=st.integers(0, 2**31))
def test_score_has_zero_mean(name, seed):
    pol, theta, _ = _setup(name, seed)
    S, A = pol.n_states, pol.n_actions
    s, a = np.meshgrid(np.arange(S), np.arange(A), indexing="ij")
    score = pol.score(theta, s, a).reshape(S, A, -1)
    mean = np.einsum("sa,sap->sp", pol.probs(theta), score)
    np.testing.assert_allclose(mean, 0.0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(POLICY_FACTORIES))
@given(seed=st.integers(0, 2**31))
def test_probs_are_distributions(name, seed):
    pol, theta, _ = _setup(name, seed)
    p = pol.probs(theta)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-14)
    np.testing.assert_allclose(np.exp(pol.log_probs(theta)), p, rtol=1e-13)


@pytest.mark.parametrize("name", sorted(POLICY_FACTORIES))
@given(seed=st.integers(0, 2**31), n=st.integers(1, 30))
def test_contract_equals_brute_force(name, seed, n):
    pol, theta, rng = _setup(name, seed)
    S, A = pol.n_states, pol.n_actions
    states = rng.integers(0, S, size=n)
    actions = rng.integers(0, A, size=n)
    w = rng.normal(size=n)
    brute = sum(w[i] * pol.score(theta, states[i], actions[i]) for i in range(n))
    np.testing.assert_allclose(pol.contract(theta, states, w, actions), brute, rtol=1e-12, atol=1e-12)
    # all-action weights
    W = rng.normal(size=(n, A))
    brute = sum(W[i, b] * pol.score(theta, states[i], b) for i in range(n) for b in range(A))
    np.testing.assert_allclose(pol.contract(theta, states, W), brute, rtol=1e-12, atol=1e-12)
    # per-episode contraction
    episodes = rng.integers(0, 3, size=n)
    per = pol.contract_episodes(theta, episodes, 3, states, w, actions)
    for e in range(3):
        m = episodes == e
        expect = pol.contract(theta, states[m], w[m], actions[m]) if m.any() else np.zeros(pol.theta_shape)
        np.testing.assert_allclose(per[e], expect, rtol=1e-12, atol=1e-12)
    per_all = pol.contract_episodes(theta, episodes, 3, states, W)
    np.testing.assert_allclose(per_all.sum(axis=0), pol.contract(theta, states, W), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(POLICY_FACTORIES))
def test_sample_actions_chi_square(name):
    """Chi-square goodness of fit at p = 1e-6 against pi(.|s)."""
    from scipy import stats
    pol, theta, _ = _setup(name, 1)
    s = np.repeat(np.arange(pol.n_states), 20000)
    a = pol.sample_actions(theta, s, rng=7)
    counts = np.zeros((pol.n_states, pol.n_actions))
    np.add.at(counts, (s, a), 1)
    expected = 20000 * pol.probs(theta)
    stat = ((counts - expected) ** 2 / expected).sum()
    dof = pol.n_states * (pol.n_actions - 1)
    assert stats.chi2.sf(stat, dof) > 1e-6
    # same seed, same draws
    np.testing.assert_array_equal(a, pol.sample_actions(theta, s, rng=7))


def test_log_probs_stable_for_huge_logits():
    pol = TabularSoftmax(1, 3)
    theta = np.array([[1e4, -1e4, 1e4 - 1.0]])
    lp = pol.log_probs(theta)
    assert np.all(np.isfinite(lp))
    expect0 = -np.log1p(np.exp(-1.0))
    np.testing.assert_allclose(lp[0, [0, 2]], [expect0, -1.0 + expect0], rtol=1e-15)
    assert lp[0, 1] == pytest.approx(-2e4 + expect0, rel=1e-15)
    p = pol.probs(theta)
    assert p[0, 1] == 0.0 and np.isclose(p.sum(), 1.0)


BAD = [
    ("theta-shape", lambda: TabularSoftmax(2, 2).probs(np.zeros(3)), ShapeError, "`theta` must have shape"),
    ("theta-nan", lambda: TabularSoftmax(1, 2).probs(np.array([[0.0, np.nan]])), ValidationError, "`theta` must be finite"),
    ("n_states-zero", lambda: TabularSoftmax(0, 2), ValidationError, "`n_states` must be >= 1"),
    ("n_actions-float", lambda: TabularSoftmax(2, 2.5), TypeError, "`n_actions` must be an int"),
    ("phi-ndim", lambda: LinearSoftmax(np.zeros((2, 2))), ShapeError, "`phi` must have 3 dimensions"),
    ("states-range", lambda: TabularSoftmax(2, 2).score(np.zeros((2, 2)), 5, 0), ValidationError, "`states` must lie in"),
    ("actions-shape", lambda: TabularSoftmax(2, 2).score(np.zeros((2, 2)), [0, 1], [0]), ShapeError, "`actions` must have the shape"),
    ("weights-shape", lambda: TabularSoftmax(2, 2).contract(np.zeros((2, 2)), [0, 1], np.zeros(3)), ShapeError, "`weights` must have shape"),
    ("rng-none", lambda: TabularSoftmax(2, 2).sample_actions(np.zeros((2, 2)), [0], None), TypeError, "`rng` must be"),
]


@pytest.mark.parametrize("call,exc,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match.replace("(", r"\(").replace("[", r"\[")):
        call()
