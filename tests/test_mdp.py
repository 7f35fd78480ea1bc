"""MDP construction: validation at the boundary, immutability, conversions."""
import numpy as np
import pytest
import scipy.sparse as sp

from tabularpg import MDP, ShapeError, ValidationError, exact


def _P(S=2, A=2):
    return np.full((S, A, S), 1.0 / S)


MU = np.array([1.0, 0.0])
BAD = [
    ("P-ndim", dict(P=np.ones((2, 2))), ShapeError, "`P` must have 3 dimensions"),
    ("P-square", dict(P=np.full((2, 2, 3), 1 / 3)), ShapeError, "`P` must have shape (S, A, S)"),
    ("P-negative", dict(P=np.array([[[1.5, -0.5]] * 2] * 2)), ValidationError, "`P` entry (s=0, a=0, s'=1) is -0.5"),
    ("P-rowsum", dict(P=np.array([[[0.5, 0.47]] * 2] * 2)), ValidationError, "`P` row (s=0, a=0) sums to 0.97"),
    ("P-nan", dict(P=np.full((2, 2, 2), np.nan)), ValidationError, "`P` must be finite"),
    ("P-sparse-shape", dict(P=sp.csr_matrix(np.ones((3, 2)) / 2)), ShapeError, "sparse `P` must have shape (S*A, S)"),
    ("R-shape", dict(R=np.zeros((3, 2))), ShapeError, "`R` must have shape (S, A)"),
    ("mu-sum", dict(mu=np.array([0.5, 0.4])), ValidationError, "`mu` sums to 0.9"),
    ("mu-negative", dict(mu=np.array([1.5, -0.5])), ValidationError, "`mu` must be non-negative"),
    ("gamma-range", dict(gamma=1.5), ValidationError, "`gamma` must lie in [0.0, 1.0]"),
    ("gamma-type", dict(gamma="0.9"), TypeError, "`gamma` must be a real number"),
    ("gamma-one", dict(gamma=1.0), ValidationError, "`gamma` == 1 with `horizon` None and no `terminal`"),
    ("horizon-zero", dict(horizon=0), ValidationError, "`horizon` must be >= 1"),
    ("horizon-float", dict(horizon=2.0), TypeError, "`horizon` must be an int"),
    ("terminal-dtype", dict(terminal=np.array([0, 1])), TypeError, "`terminal` must be a boolean array"),
    ("terminal-mu", dict(terminal=np.array([True, False])), ValidationError, "`mu` puts mass on terminal states [0]"),
]


@pytest.mark.parametrize("changes,exc,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments(changes, exc, match):
    args = dict(P=_P(), R=np.zeros((2, 2)), mu=MU, gamma=0.9)
    args.update(changes)
    with pytest.raises(exc, match=match.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("*", r"\*")):
        MDP(**args)


def test_row_sum_tolerance_is_settable():
    P = _P() * (1 + 1e-6)
    with pytest.raises(ValidationError):
        MDP(P, np.zeros((2, 2)), MU)
    assert MDP(P, np.zeros((2, 2)), MU, atol=1e-5).n_states == 2


def test_immutable():
    m = MDP(_P(), np.zeros((2, 2)), MU)
    with pytest.raises(AttributeError):
        m.gamma = 0.5
    with pytest.raises(ValueError):
        m.P[0, 0, 0] = 3.0
    assert m.replace(gamma=0.5).gamma == 0.5 and m.gamma == 0.9


def test_transition_rewards_become_expected_rewards():
    rng = np.random.default_rng(0)
    P = rng.random((3, 2, 3)); P /= P.sum(-1, keepdims=True)
    R = rng.normal(size=(3, 2, 3))
    m = MDP(P, R, np.ones(3) / 3)
    np.testing.assert_allclose(m.r_sa, (P * R).sum(-1))
    ms = MDP(sp.csr_matrix(P.reshape(6, 3)), R, np.ones(3) / 3)
    np.testing.assert_allclose(ms.r_sa, m.r_sa)


def test_mdptoolbox_round_trip_and_npz(tmp_path):
    rng = np.random.default_rng(1)
    P = rng.random((4, 3, 4)); P /= P.sum(-1, keepdims=True)
    m = MDP(P, rng.normal(size=(4, 3)), np.ones(4) / 4, gamma=0.8)
    Pt, Rt = m.to_mdptoolbox()
    assert Pt.shape == (3, 4, 4) and Rt.shape == (4, 3)
    back = MDP.from_mdptoolbox(Pt, Rt, m.mu, gamma=0.8)
    np.testing.assert_array_equal(back.P, m.P)
    m.to_npz(tmp_path / "m.npz")
    loaded = MDP.from_npz(tmp_path / "m.npz")
    pi = np.full((4, 3), 1 / 3)
    assert exact.objective(loaded, pi) == exact.objective(m, pi)
