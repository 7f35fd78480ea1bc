"""NeuralSoftmax: hand-written backpropagation checked against independent oracles.

Oracles: complex step of ``J`` (exact gradient), complex step of ``log pi`` (score; the
shared contract tests in test_policies.py cover it for both layouts), the explicit
Fisher matrix built from per-(s, a) scores, the pseudo-inverse of that matrix (natural
directions), and the base class's dense per-episode contraction.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tabularpg import (
    NeuralSoftmax,
    Policy,
    ShapeError,
    ValidationError,
    envs,
    exact,
    optim,
)
from tabularpg.testing.oracles import complex_step_gradient, objective_of

LAYOUTS = {
    "sa-tanh": lambda S, A, rng: NeuralSoftmax(rng.normal(size=(S, A, 3)), hidden=(5, 4)),
    "sa-relu": lambda S, A, rng: NeuralSoftmax(rng.normal(size=(S, A, 3)), hidden=(6,), activation="relu"),
    "state-tanh": lambda S, A, rng: NeuralSoftmax(rng.normal(size=(S, 4)), hidden=(5,), n_actions=A),
}
MDPS = {
    "discounted": lambda: envs.garnet(6, 3, 2, gamma=0.9, rng=3),
    "finite": lambda: envs.garnet(5, 3, 2, gamma=0.95, horizon=4, rng=4),
    "terminal": lambda: envs.cliff_walking(),
}


def _setup(layout, mdp_name, seed=0):
    mdp = MDPS[mdp_name]()
    rng = np.random.default_rng(seed)
    pol = LAYOUTS[layout](mdp.n_states, mdp.n_actions, rng)
    return mdp, pol, pol.init(rng, scale=1.5)


def _explicit_fisher(mdp, pol, theta):
    S, A = mdp.n_states, mdp.n_actions
    s, a = np.meshgrid(np.arange(S), np.arange(A), indexing="ij")
    score = pol.score(theta, s, a).reshape(S, A, -1)
    pi = pol.probs(theta)
    d = exact.analyze(mdp, pi).d_total
    return np.einsum("s,sa,sap,saq->pq", d, pi, score, score)


@pytest.mark.parametrize("mdp_name", sorted(MDPS))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_exact_gradient_equals_complex_step_of_J(layout, mdp_name):
    mdp, pol, theta = _setup(layout, mdp_name)
    if mdp_name == "terminal":  # cliff walking: keep the policy proper and the test fast
        theta = pol.init(1, scale=0.3)
    g = exact.policy_gradient(mdp, pol, theta)
    oracle = complex_step_gradient(objective_of(mdp, pol), theta)
    np.testing.assert_allclose(g, oracle, rtol=1e-9, atol=1e-9 * np.abs(oracle).max())


@given(seed=st.integers(0, 2**31 - 1), hidden=st.lists(st.integers(1, 4), min_size=0, max_size=2))
def test_gradient_property_random_networks(seed, hidden):
    """For every random Garnet and network shape: grad J = complex step of J."""
    rng = np.random.default_rng(seed)
    mdp = envs.garnet(4, 2, 2, gamma=0.8, rng=seed)
    pol = NeuralSoftmax(rng.normal(size=(4, 2, 2)), hidden=tuple(hidden))
    theta = pol.init(rng)
    oracle = complex_step_gradient(objective_of(mdp, pol), theta)
    np.testing.assert_allclose(exact.policy_gradient(mdp, pol, theta), oracle, rtol=1e-9,
                               atol=1e-10 * max(1.0, np.abs(oracle).max()))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_fisher_vector_products_equal_explicit_fisher(layout):
    mdp, pol, theta = _setup(layout, "discounted")
    F = _explicit_fisher(mdp, pol, theta)
    V = np.random.default_rng(1).normal(size=(3, pol.n_params))
    fv = exact.fisher_vector_product(mdp, pol, theta, V)
    np.testing.assert_allclose(fv, V @ F, rtol=1e-10, atol=1e-12 * np.abs(F).max())
    np.testing.assert_allclose(exact.fisher(mdp, pol, theta), F, rtol=1e-10, atol=1e-12 * np.abs(F).max())


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_per_episode_contraction_equals_dense_default(layout):
    """The sparse one-pass override equals the base class's (N, S, A) table route."""
    mdp, pol, theta = _setup(layout, "discounted")
    rng = np.random.default_rng(2)
    n, N = 200, 17
    states, actions = rng.integers(0, mdp.n_states, n), rng.integers(0, mdp.n_actions, n)
    episodes = rng.integers(0, N, n)
    for w, acts in ((rng.normal(size=n), actions), (rng.normal(size=(n, mdp.n_actions)), None)):
        fast = pol.contract_episodes(theta, episodes, N, states, w, acts)
        dense = Policy.contract_episodes(pol, theta, episodes, N, states, w, acts)
        np.testing.assert_allclose(fast, dense, rtol=1e-12, atol=1e-12)


def test_no_hidden_layer_state_action_net_is_linear_softmax():
    """hidden=() with state-action features: z = phi theta + b, and b cancels."""
    from tabularpg import LinearSoftmax
    phi = np.random.default_rng(0).normal(size=(4, 3, 2))
    net, lin = NeuralSoftmax(phi, hidden=()), LinearSoftmax(phi)
    w = np.array([0.3, -1.2])
    theta = net.flatten([(w[:, None], np.array([5.0]))])
    np.testing.assert_allclose(net.probs(theta), lin.probs(w), rtol=1e-14)
    mdp = envs.garnet(4, 3, 2, rng=0)
    g = exact.policy_gradient(mdp, net, theta)
    np.testing.assert_allclose(g[:2], exact.policy_gradient(mdp, lin, w), rtol=1e-12)
    assert abs(g[2]) < 1e-14  # the bias of a single output never changes the softmax


def test_flatten_unflatten_round_trip_and_layout():
    pol = NeuralSoftmax(np.zeros((3, 2)), hidden=(4, 5), n_actions=6)
    theta = np.arange(pol.n_params, dtype=float)
    layers = pol.unflatten(theta)
    assert [(W.shape, b.shape) for W, b in layers] == [((2, 4), (4,)), ((4, 5), (5,)), ((5, 6), (6,))]
    assert layers[0][0][0, 1] == 1.0 and layers[0][1][0] == 8.0  # W_1 row-major, then b_1
    np.testing.assert_array_equal(pol.flatten(layers), theta)
    np.testing.assert_array_equal(pol.init(7), pol.init(7))  # seeded


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_log_probs_stable_at_huge_weights(layout):
    _, pol, theta = _setup(layout, "discounted")
    lp = pol.log_probs(1e4 * theta)
    assert np.all(np.isfinite(lp)) and np.allclose(np.exp(lp).sum(axis=1), 1.0)


def _npg_direction_check(mdp, pol, theta):
    """(g, pinv(F) g) with F formed explicitly from the scores."""
    g = exact.policy_gradient(mdp, pol, theta)
    return g, np.linalg.pinv(_explicit_fisher(mdp, pol, theta), rcond=1e-10) @ g


def test_natural_gradient_is_pinv_fisher_times_gradient():
    mdp, pol, theta = _setup("sa-tanh", "discounted")
    _, expect = _npg_direction_check(mdp, pol, theta)
    np.testing.assert_allclose(exact.natural_gradient(mdp, pol, theta), expect, rtol=1e-6,
                               atol=1e-8 * np.abs(expect).max())


def test_conjugate_gradient_on_fisher_vector_products_gives_the_natural_direction():
    """TRPO's direction: CG on hand-written FVPs (F never formed) = pinv(F) g."""
    mdp, pol, theta = _setup("state-tanh", "discounted")
    g, expect = _npg_direction_check(mdp, pol, theta)
    x = optim.conjugate_gradient(lambda v: exact.fisher_vector_product(mdp, pol, theta, v), g,
                                 n_iter=10 * pol.n_params, tol=1e-13)
    np.testing.assert_allclose(x, expect, rtol=1e-6, atol=1e-7 * np.abs(expect).max())


@pytest.mark.parametrize("algo", ["npg", "trpo"])
def test_npg_and_trpo_increase_J_monotonically(algo):
    mdp, pol, theta = _setup("sa-tanh", "discounted", seed=5)
    if algo == "npg":
        res = optim.natural_policy_gradient(mdp, pol, theta, step_size=0.05, n_iter=15)
    else:
        res = optim.trpo(mdp, pol, theta, delta=1e-3, n_iter=15)
    assert np.all(np.diff(res.j) > 0), res.j
    assert res.j[-1] > res.j[0] + 1e-3


BAD = [
    ("phi-ndim", lambda: NeuralSoftmax(np.zeros(3)), ShapeError, "`phi` must have shape"),
    ("state-features-need-n_actions", lambda: NeuralSoftmax(np.zeros((3, 2))), ValidationError,
     "`n_actions` is required"),
    ("n_actions-mismatch", lambda: NeuralSoftmax(np.zeros((3, 2, 2)), n_actions=3), ShapeError, "`n_actions`=3"),
    ("hidden-string", lambda: NeuralSoftmax(np.zeros((3, 2, 2)), hidden="16"), ValidationError, "`hidden` must be"),
    ("hidden-zero", lambda: NeuralSoftmax(np.zeros((3, 2, 2)), hidden=(0,)), ValidationError,
     "`hidden[0]` must be >= 1"),
    ("activation", lambda: NeuralSoftmax(np.zeros((3, 2, 2)), activation="sigmoid"), ValidationError, "`activation`"),
    ("phi-nan", lambda: NeuralSoftmax(np.full((3, 2, 2), np.nan)), ValidationError, "`phi`"),
    ("theta-shape", lambda: NeuralSoftmax(np.zeros((3, 2, 2))).probs(np.zeros(3)), ShapeError, "`theta`"),
    ("flatten-count", lambda: NeuralSoftmax(np.zeros((3, 2, 2))).flatten([]), ShapeError, "`layers` must have 2"),
]


@pytest.mark.parametrize("call,exc,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments(call, exc, match):
    import re
    with pytest.raises(exc, match=re.escape(match)):
        call()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_forward_mode_equals_complex_step_along_random_directions(layout):
    """log_probs_jvp (the forward pass) = complex step of log pi along v."""
    _, pol, theta = _setup(layout, "discounted")
    V = np.random.default_rng(3).normal(size=(4, pol.n_params))
    cs = np.stack([pol.log_probs(theta + 1j * 1e-30 * v).imag / 1e-30 for v in V])
    np.testing.assert_allclose(pol.log_probs_jvp(theta, V), cs, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("estimator,options", [("reward_to_go", {}), ("gae", {"lam": 0.7}),
                                               ("reinforce", {"baseline": 0.3})])
def test_exact_moments_recursion_equals_enumeration(estimator, options):
    """The neural policy gets exact second moments through the same Policy interface."""
    from tabularpg.moments import exact_moments
    mdp = envs.garnet(3, 2, 2, gamma=0.9, rng=1)
    pol = NeuralSoftmax(np.random.default_rng(0).normal(size=(3, 2, 2)), hidden=(3,))
    theta = pol.init(2)
    if estimator == "gae":
        options = dict(options, critic=np.linspace(-1, 1, 3))
    rec = exact_moments(mdp, pol, theta, estimator, 3, method="recursion", **options)
    enum = exact_moments(mdp, pol, theta, estimator, 3, method="enumerate", **options)
    scale = np.abs(enum.cov).max()
    np.testing.assert_allclose(rec.mean, enum.mean, rtol=1e-12, atol=1e-12 * np.abs(enum.mean).max())
    np.testing.assert_allclose(rec.cov, enum.cov, rtol=1e-12, atol=1e-12 * scale)
