"""MDP construction and files: bad input refused with the argument's name, the caller's
arrays never changed (not even by a refused call), nothing shared afterwards, and
foreign ``.npz`` files refused with their path."""
import numpy as np
import pytest
import scipy.sparse as sp
from _bad_inputs import rows_for, run_row
from hypothesis import given, settings

import tabularpg as tpg
from tabularpg import MDP
from tabularpg._validation import (
    ArgumentTypeError,
    FileFormatError,
    MissingFileError,
    ShapeError,
    ValidationError,
)
from tabularpg.testing import strategies


def _dense():
    P = np.zeros((2, 2, 2))
    P[:, 0, 0] = 1.0
    P[:, 1, 1] = 1.0
    return dict(P=P, R=np.array([[1.0, 0.0], [0.0, 2.0]]), mu=np.array([1.0, 0.0]), gamma=0.5)


def _csr_with_duplicates():
    # rows (s, a) = (0, 0): entries 0.5 and 0.5 in column 0 (duplicates), others one-hot
    data = np.array([0.5, 0.5, 1.0, 1.0, 1.0])
    indices = np.array([0, 0, 1, 0, 1])
    indptr = np.array([0, 2, 3, 4, 5])
    return sp.csr_matrix((data, indices, indptr), shape=(4, 2))


# (id, changes to the good arguments, error, words of the message)
MDP_ROWS = [
    ("P-string", dict(P="P"), ArgumentTypeError, "`P`"),
    ("P-complex", dict(P=_dense()["P"] + 0j), ArgumentTypeError, "`P` must be real"),
    ("P-sparse-complex", dict(P=sp.csr_matrix(_dense()["P"].reshape(4, 2) + 0j)), ArgumentTypeError,
     "`P` must be real"),
    ("P-nan", dict(P=np.full((2, 2, 2), np.nan)), ValidationError, "`P`"),
    ("P-shape", dict(P=np.ones((2, 2, 3)) / 3), ShapeError, "`P`"),
    ("P-sparse-shape", dict(P=sp.csr_matrix(np.ones((3, 2)) / 2)), ShapeError, "`P`"),
    ("R-shape", dict(R=np.zeros((3, 2))), ShapeError, "`R`"),
    ("R-inf", dict(R=np.array([[np.inf, 0.0], [0.0, 0.0]])), ValidationError, "`R`"),
    ("R-string", dict(R="R"), ArgumentTypeError, "`R`"),
    ("mu-shape", dict(mu=np.ones(3) / 3), ShapeError, "`mu`"),
    ("mu-sum", dict(mu=np.array([0.5, 0.4])), ValidationError, "`mu`"),
    ("gamma-nan", dict(gamma=np.nan), ValidationError, "`gamma`"),
    ("gamma-complex", dict(gamma=0.5 + 0j), ArgumentTypeError, "`gamma`"),
    ("gamma-range", dict(gamma=2.0), ValidationError, "`gamma` must lie in"),
    ("gamma-string", dict(gamma="0.9"), ArgumentTypeError, "`gamma`"),
    ("horizon-float", dict(horizon=2.5), ArgumentTypeError, "`horizon` must be an int"),
    ("horizon-float-integral", dict(horizon=2.0), ArgumentTypeError, "`horizon` must be an int"),
    ("horizon-bool", dict(horizon=True), ArgumentTypeError, "`horizon`"),
    ("horizon-zero", dict(horizon=0), ValidationError, "`horizon`"),
    ("terminal-int", dict(terminal=np.array([0, 1])), ArgumentTypeError, "`terminal`"),
    ("terminal-shape", dict(terminal=np.array([False, True, False])), ShapeError, "`terminal`"),
    ("atol-nan", dict(atol=np.nan), ValidationError, "`atol`"),
    ("atol-negative", dict(atol=-1.0), ValidationError, "`atol`"),
]


@pytest.mark.parametrize("changes, error, words", [r[1:] for r in MDP_ROWS], ids=[r[0] for r in MDP_ROWS])
def test_mdp_bad_arguments(changes, error, words):
    kwargs = {**_dense(), **changes}
    run_row(MDP, (), kwargs, error, words)


def test_refused_sparse_call_leaves_the_callers_csr_unchanged():
    P = _csr_with_duplicates()
    before = (P.data.copy(), P.indices.copy(), P.indptr.copy())
    with pytest.raises(ValidationError, match="`gamma`"):
        MDP(P, np.zeros((2, 2)), np.array([1.0, 0.0]), gamma=2.0)
    for now, then in zip((P.data, P.indices, P.indptr), before):
        np.testing.assert_array_equal(now, then)
    assert P.nnz == 5 and not P.has_canonical_format


def test_built_mdp_shares_nothing_with_the_callers_arrays():
    P = _csr_with_duplicates()
    R, mu = np.zeros((2, 2)), np.array([1.0, 0.0])
    m = MDP(P, R, mu, gamma=0.9)
    expected = m.P.toarray().copy()
    P.data[:] = 7.0  # would make every row sum to 14 (or 7) inside a shared MDP
    R[:] = 5.0
    mu[:] = [0.0, 1.0]
    np.testing.assert_array_equal(m.P.toarray(), expected)
    assert float(np.abs(m.R).max()) == 0.0 and m.mu.tolist() == [1.0, 0.0]

    d = _dense()
    md = MDP(**d)
    d["P"][0, 0] = [0.0, 1.0]
    d["R"][:] = -1.0
    assert md.P[0, 0].tolist() == [1.0, 0.0] and md.R[0, 0] == 1.0


def test_exposed_arrays_are_read_only():
    m = MDP(_csr_with_duplicates(), np.zeros((2, 2)), np.array([1.0, 0.0]), gamma=0.9)
    for arr in (m.P.data, m.P.indices, m.P.indptr, m.R, m.r_sa, m.mu, m.terminal):
        with pytest.raises(ValueError):
            arr[...] = 0
    md = MDP(**_dense())
    for arr in (md.P, md.R, md.r_sa, md.mu, md.terminal):
        with pytest.raises(ValueError):
            arr[...] = 0
    with pytest.raises(AttributeError):
        md.gamma = 0.1
    # the read-only sparse P still samples, solves and converts
    b = tpg.sample(m, tpg.TabularSoftmax(2, 2), np.zeros((2, 2)), 3, rng=0, horizon=2)
    assert b.states.shape == (3, 2)


# ----------------------------------------------------------------------------- files
def test_npz_round_trip_and_refusals(tmp_path):
    m = MDP(**_dense(), horizon=3)
    good = tmp_path / "m.npz"
    m.to_npz(good)
    back = MDP.from_npz(good)
    assert back.horizon == 3 and np.array_equal(back.P, m.P)

    missing = tmp_path / "missing.npz"
    with pytest.raises(MissingFileError, match="missing.npz") as info:
        MDP.from_npz(missing)
    assert isinstance(info.value, FileNotFoundError)

    garbage = tmp_path / "garbage.npz"
    garbage.write_text("not an archive")
    with pytest.raises(FileFormatError, match="garbage.npz") as info:
        MDP.from_npz(garbage)
    assert "allow_pickle" not in str(info.value)

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, P=np.array([object()], dtype=object), R=m.R, mu=m.mu, gamma=0.5)
    with pytest.raises(FileFormatError, match="pickled.npz") as info:
        MDP.from_npz(pickled)
    assert "allow_pickle" not in str(info.value)

    half = tmp_path / "half.npz"
    np.savez(half, P=m.P, R=m.R, mu=m.mu, gamma=0.5, horizon=2.5)
    with pytest.raises(FileFormatError, match="`horizon` must be an integer"):
        MDP.from_npz(half)

    lacking = tmp_path / "lacking.npz"
    np.savez(lacking, P=m.P, R=m.R)
    with pytest.raises(FileFormatError, match="lacks keys"):
        MDP.from_npz(lacking)

    bad_rows = tmp_path / "bad_rows.npz"
    np.savez(bad_rows, P=np.ones((2, 2, 2)), R=m.R, mu=m.mu, gamma=0.5)
    with pytest.raises(ValidationError, match="bad_rows.npz.*`P` row"):
        MDP.from_npz(bad_rows)

    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(FileFormatError, match="single array"):
        MDP.from_npz(single)

    with pytest.raises(ArgumentTypeError, match="`path`"):
        MDP.from_npz(3)


def test_to_npz_checks_its_destination(tmp_path):
    m = MDP(**_dense())
    with pytest.raises(ValidationError, match="does not exist"):
        m.to_npz(tmp_path / "nope" / "m.npz")
    with pytest.raises(ValidationError, match=r"\.npz"):
        m.to_npz(tmp_path / "m.txt")
    assert list(tmp_path.iterdir()) == []


def test_mdp_helpers_check_their_arrays():
    m = MDP(**_dense())
    with pytest.raises(ShapeError, match="`pi`"):
        m.expected_reward(np.full((3, 2), 0.5))
    with pytest.raises(ShapeError, match="`v`"):
        m.next_state_expectation(np.zeros(3))
    with pytest.raises(ArgumentTypeError, match="unknown fields"):
        m.replace(discount=0.5)
    with pytest.raises(ValidationError, match="`gamma`"):
        m.replace(gamma=np.nan)


@settings(max_examples=15)
@given(strategies.mdps(sparse=None))
def test_no_mdp_can_be_changed_through_the_arrays_it_was_built_from(mdp):
    """Property: rebuilding any MDP from copies of its arrays, then overwriting those
    copies (and the storage of a sparse P) leaves the rebuilt MDP unchanged; a refused
    rebuild (gamma = 2) leaves the copies unchanged."""
    P = mdp.P.copy()
    R, mu = np.array(mdp.R), np.array(mdp.mu)
    P_before = P.toarray() if sp.issparse(P) else P.copy()
    with pytest.raises(ValidationError, match="`gamma`"):
        MDP(P, R, mu, gamma=2.0, horizon=mdp.horizon, terminal=mdp.terminal)
    np.testing.assert_array_equal(P.toarray() if sp.issparse(P) else P, P_before)
    m2 = MDP(P, R, mu, gamma=mdp.gamma, horizon=mdp.horizon, terminal=mdp.terminal)
    dense_before = m2.P_dense().copy()
    (P.data if sp.issparse(P) else P)[...] = 3.0
    R[...] = 7.0
    mu[...] = 0.0
    np.testing.assert_array_equal(m2.P_dense(), dense_before)
    np.testing.assert_array_equal(m2.R, mdp.R)
    np.testing.assert_array_equal(m2.mu, mdp.mu)


# good calls registered for the generated sweep in test_validation_all (no rows here)
_M = MDP(**_dense())
rows_for("MDP", MDP, (), _dense(), {})
rows_for("MDP.replace", _M.replace, (), {"gamma": 0.3}, {})
rows_for("MDP.expected_reward", _M.expected_reward, (np.full((2, 2), 0.5),), {}, {})
rows_for("MDP.next_state_expectation", _M.next_state_expectation, (np.zeros(2),), {}, {})
rows_for("MDP.to_npz", _M.to_npz, ("m.npz",), {}, {})
rows_for("MDP.from_npz", MDP.from_npz, ("missing.npz",), {}, {})
rows_for("MDP.from_mdptoolbox", MDP.from_mdptoolbox, (np.transpose(_dense()["P"], (1, 0, 2)), _dense()["R"]), {}, {})
