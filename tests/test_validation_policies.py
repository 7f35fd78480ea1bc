"""Bad arguments of the policy classes and their public methods: the library's error,
naming the argument, and nothing changed by a refused call."""
import numpy as np
import pytest
from _bad_inputs import SH, Bad, T, V, array, int_, rng_, rows_for, run_param

from tabularpg import policies
from tabularpg.policies import LinearSoftmax, NeuralSoftmax, TabularSoftmax

TAB = TabularSoftmax(3, 2)
LIN = LinearSoftmax(np.random.default_rng(0).normal(size=(3, 2, 4)))
TH = np.random.default_rng(1).normal(size=(3, 2))
THL = np.random.default_rng(2).normal(size=4)
NEU = NeuralSoftmax(np.random.default_rng(3).normal(size=(3, 2, 2)), hidden=(3,))
THN = np.random.default_rng(4).normal(size=NEU.theta_shape)
S_ = np.array([0, 1, 2, 1])
A_ = np.array([1, 0, 1, 1])
W1 = np.array([0.5, -1.0, 2.0, 0.1])
WA = np.ones((4, 2))
STATES = Bad(("float", np.array([0.5, 1.0, 2.0, 1.0]), V), ("out-of-range", np.array([0, 1, 3, 1]), V),
             ("negative", np.array([0, -1, 2, 1]), V))
ACTIONS = Bad(("float", np.array([1.0, 0.0, 1.0, 1.0]), V), ("out-of-range", np.array([0, 2, 0, 0]), V),
              ("shape", np.array([0, 1]), SH))


def rows_for_policy(label, pol, theta):
    theta_bad = array(theta, complex_ok=True)
    return (
        rows_for(f"{label}.probs", pol.probs, (theta,), {}, {"theta": theta_bad})
        + rows_for(f"{label}.log_probs", pol.log_probs, (theta,), {}, {"theta": theta_bad})
        + rows_for(f"{label}.logits", pol.logits, (theta,), {}, {"theta": theta_bad})
        + rows_for(f"{label}.check_theta", pol.check_theta, (theta,), {}, {"theta": theta_bad})
        + rows_for(f"{label}.score", pol.score, (theta, S_, A_), {},
                   {"theta": theta_bad, "states": STATES, "actions": ACTIONS})
        + rows_for(f"{label}.log_probs_jvp", pol.log_probs_jvp, (theta, np.ones_like(theta)), {},
                   {"theta": theta_bad, "v": array(theta, complex_ok=True)})
        + rows_for(f"{label}.contract_table", pol.contract_table, (theta, np.ones((3, 2))), {},
                   {"theta": theta_bad, "w_sa": array(np.ones((3, 2)), complex_ok=True),
                    "pi": array(np.full((3, 2), 0.5), complex_ok=True)})
        + rows_for(f"{label}.contract", pol.contract, (theta, S_, W1), {"actions": A_},
                   {"theta": theta_bad, "states": STATES, "actions": ACTIONS,
                    "weights": array(W1, complex_ok=True)})
        + rows_for(f"{label}.contract-all", pol.contract, (theta, S_, WA), {},
                   {"weights": array(WA, complex_ok=True)})
        + rows_for(f"{label}.contract_episodes", pol.contract_episodes,
                   (theta, np.array([0, 0, 1, 1]), 2, S_, W1), {"actions": A_},
                   {"theta": theta_bad, "episodes": Bad(("float", np.array([0.0, 0, 1, 1]), V),
                                                        ("out-of-range", np.array([0, 0, 2, 1]), V),
                                                        ("shape", np.array([0, 1]), SH)),
                    "n_episodes": int_(1), "states": STATES, "weights": array(W1, complex_ok=True)})
        + rows_for(f"{label}.sample_actions", pol.sample_actions, (theta, S_, 0), {},
                   {"theta": array(theta), "states": STATES, "rng": rng_()})
    )


ROWS = (
    rows_for("TabularSoftmax", TabularSoftmax, (3, 2), {}, {"n_states": int_(1), "n_actions": int_(1)})
    + rows_for("LinearSoftmax", LinearSoftmax, (np.ones((3, 2, 4)),), {},
               {"phi": array(np.ones((3, 2, 4)), short=False) + Bad(("empty", np.ones((3, 2, 0)), SH))})
    + rows_for("LinearSoftmax.one_hot", LinearSoftmax.one_hot, (3, 2), {},
               {"n_states": int_(1), "n_actions": int_(1)})
    + rows_for_policy("tabular", TAB, TH)
    + rows_for_policy("linear", LIN, THL)
    + rows_for("NeuralSoftmax", NeuralSoftmax, (np.ones((3, 2, 2)),), {"hidden": (3,)}, {
        "phi": array(np.ones((3, 2, 2)), short=False) + Bad(("empty", np.ones((3, 2, 0)), SH), ("1d", np.ones(3), SH)),
        "hidden": Bad(("str", "16", V), ("int", 3, V)), "activation": Bad(("unknown", "sigmoid", V), ("int", 1, V)),
        "n_actions": Bad(("mismatch", 3, SH))})
    + [pytest.param(NeuralSoftmax, {"phi": np.ones((3, 2, 2)), "hidden": (3, 0)}, V, "`hidden[1]`",
                    id="NeuralSoftmax-hidden-zero-width")]
    + rows_for_policy("neural", NEU, THN)
    + rows_for("softmax", policies.softmax, (np.zeros((2, 3)),), {},
               {"z": Bad(("str", "z", T), ("nan", np.full(3, np.nan), V), ("empty", np.zeros((2, 0)), SH)),
                "axis": int_() + Bad(("out-of-range", 2, SH))})
    + rows_for("log_softmax", policies.log_softmax, (np.zeros((2, 3)),), {},
               {"z": Bad(("str", "z", T), ("nan", np.full(3, np.nan), V), ("empty", np.zeros((2, 0)), SH)),
                "axis": int_() + Bad(("out-of-range", -3, SH))})
)
# drop rows that are not errors for a policy class (e.g. a wrong-shape theta for a method
# that takes (..., theta_shape) batches is still wrong; none to drop today)


@pytest.mark.parametrize("fn, call, error, words", ROWS)
def test_bad_argument(fn, call, error, words):
    run_param(fn, call, error, words)


def test_every_public_name_has_rows():
    covered = {r.id.split("-")[0].split(".")[0] for r in ROWS}
    assert {"TabularSoftmax", "LinearSoftmax", "softmax", "log_softmax", "tabular", "linear"} <= covered
    assert set(policies.__all__) - {"Policy"} <= covered


def test_contract_table_refuses_wrong_table_instead_of_broadcasting():
    with pytest.raises(SH, match=r"`w_sa` must have shape \(\.\.\., \*\(S, A\)\) = \(\.\.\., 3, 2\); got \(2, 2\)"):
        TAB.contract_table(TH, np.ones((2, 2)))
