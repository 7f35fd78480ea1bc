r"""Finite Markov decision processes.

An MDP is the tuple :math:`(P, R, \mu, \gamma, H, \mathcal T)`:

* ``P[s, a, s']`` transition probabilities, shape (S, A, S), rows summing to one; or a
  ``scipy.sparse`` matrix of shape (S*A, S) whose row ``s*A + a`` is ``P[s, a, :]``;
* ``R[s, a]`` expected rewards, or ``R[s, a, s']`` rewards on transitions;
* ``mu[s]`` the initial-state distribution;
* ``gamma`` in [0, 1]; ``horizon`` ``H`` (``None`` for infinite);
* ``terminal[s]``: entering a terminal state ends the episode, with the reward of that
  transition received (Gymnasium's ``terminated``). No decision is taken in a terminal
  state, so its value, its action values and its occupancy are zero.

The objective of a policy is :math:`J = E[\sum_{t<T} \gamma^t r_t]` with ``T`` the
horizon, the step of termination, or infinity.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._validation import (
    ArgumentTypeError,
    FileFormatError,
    ShapeError,
    ValidationError,
    as_float_array,
    check_float,
    check_int,
    check_readable_file,
    check_writable_path,
)

__all__ = ["MDP"]

_DEFAULT_ATOL = 1e-8


def _readonly(a):
    """Make ``a`` (an owned ndarray or CSR matrix) read-only."""
    if isinstance(a, np.ndarray):
        a.setflags(write=False)
    elif sp.issparse(a):
        for arr in (a.data, a.indices, a.indptr):
            arr.setflags(write=False)
    return a


class MDP:
    r"""A finite MDP, validated once at construction and immutable afterwards.

    Parameters
    ----------
    P : ndarray of shape (S, A, S) or scipy.sparse matrix of shape (S*A, S)
        Transition probabilities; row ``(s, a)`` must sum to one within ``atol``.
    R : ndarray of shape (S, A) or (S, A, S)
        Expected reward of ``(s, a)``, or reward of the transition ``(s, a, s')``.
    mu : ndarray of shape (S,)
        Initial-state distribution (sums to one within ``atol``, no mass on terminal
        states).
    gamma : float in [0, 1]
        Discount factor.
    horizon : int >= 1 or None
        Episode length ``H``; ``None`` for an infinite horizon.
    terminal : bool ndarray of shape (S,), optional
        Terminal states. Entering one ends the episode (its reward is received).
    atol : float
        Tolerance of the row-sum checks on ``P`` and ``mu`` (default 1e-8).

    Attributes
    ----------
    n_states, n_actions : int
    P : ndarray of shape (S, A, S) or scipy.sparse.csr_matrix of shape (S*A, S)
    R : ndarray, as given (read-only)
    r_sa : ndarray of shape (S, A)
        Expected reward ``sum_{s'} P[s, a, s'] R[s, a, s']`` (or ``R`` itself).
    mu, gamma, horizon, terminal
    is_sparse : bool

    Notes
    -----
    The MDP copies every array it validates: the caller's arrays (dense or the
    ``data``/``indices``/``indptr`` of a sparse ``P``) are never modified, not even by a
    refused call, and changing them afterwards does not change the MDP. The arrays it
    exposes (``P``, ``R``, ``r_sa``, ``mu``, ``terminal``; a sparse ``P``'s storage) are
    read-only.

    ``gamma == 1`` needs a finite horizon or terminal states; with terminal states and
    no horizon, the exact solvers additionally check that the policy is proper
    (terminates with probability one from every state) and raise
    :class:`~tabularpg._validation.ImproperPolicyError` otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> P = np.zeros((2, 2, 2)); P[:, 0, 0] = 1; P[:, 1, 1] = 1
    >>> m = MDP(P, np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([1.0, 0.0]), gamma=0.5)
    >>> m.n_states, m.n_actions
    (2, 2)
    """

    __slots__ = ("P", "R", "r_sa", "mu", "gamma", "horizon", "terminal", "n_states",
                 "n_actions", "is_sparse", "atol", "_frozen")

    def __init__(self, P, R, mu, gamma=0.9, horizon=None, terminal=None, *, atol=_DEFAULT_ATOL):
        atol = check_float(atol, "atol", low=0.0, high=1.0)
        if sp.issparse(P):
            if np.iscomplexobj(P.data if hasattr(P, "data") else P.tocsr().data):
                raise ArgumentTypeError(f"`P` must be real; got a sparse matrix of dtype {P.dtype}")
            if not (np.issubdtype(P.dtype, np.number) or P.dtype == bool):
                raise ArgumentTypeError(f"`P` must be numeric; got a sparse matrix of dtype {P.dtype}")
            # an owned copy: the caller's data/indices/indptr are never rewritten (not even
            # by sum_duplicates on a refused call) and never shared afterwards
            P = sp.csr_matrix(P, dtype=np.float64, copy=True)
            if P.ndim != 2 or P.shape[1] == 0 or P.shape[0] % P.shape[1] != 0:
                raise ShapeError(f"sparse `P` must have shape (S*A, S); got {P.shape}")
            S = P.shape[1]
            A = P.shape[0] // S
            if A == 0:
                raise ShapeError(f"sparse `P` must have shape (S*A, S) with A >= 1; got {P.shape}")
            P.sum_duplicates()
            P.sort_indices()
            P.eliminate_zeros()
            if not np.all(np.isfinite(P.data)):
                raise ValidationError("`P` must be finite; got non-finite entries")
            if np.any(P.data < 0):
                raise ValidationError(f"`P` must be non-negative; got minimum {P.data.min():.3g}")
            row_sums = np.asarray(P.sum(axis=1)).ravel().reshape(S, A)
            is_sparse = True
        else:
            P = as_float_array(P, "P", ndim=3)
            S, A, S2 = P.shape
            if S != S2 or S == 0 or A == 0:
                raise ShapeError(f"`P` must have shape (S, A, S) with S, A >= 1; got {P.shape}")
            if np.any(P < 0):
                s, a, t = np.argwhere(P < 0)[0]
                raise ValidationError(f"`P` entry (s={s}, a={a}, s'={t}) is {P[s, a, t]:.3g}; expected >= 0")
            row_sums = P.sum(axis=2)
            P = np.array(P, dtype=np.float64, copy=True)
            is_sparse = False
        bad = np.argwhere(np.abs(row_sums - 1.0) > atol)
        if bad.size:
            s, a = bad[0]
            raise ValidationError(
                f"`P` row (s={s}, a={a}) sums to {row_sums[s, a]:.12g}; expected 1 within {atol:g}")

        R = as_float_array(R, "R", ndim=(2, 3))
        if R.shape == (S, A):
            r_sa = R
        elif R.shape == (S, A, S):
            if is_sparse:
                r_sa = np.asarray(P.multiply(R.reshape(S * A, S)).sum(axis=1)).reshape(S, A)
            else:
                r_sa = np.einsum("sat,sat->sa", P, R)
        else:
            raise ShapeError(f"`R` must have shape (S, A) = {(S, A)} or (S, A, S) = {(S, A, S)}; got {R.shape}")

        mu = as_float_array(mu, "mu", shape=(S,))
        if np.any(mu < 0):
            raise ValidationError(f"`mu` must be non-negative; got minimum {mu.min():.3g}")
        if abs(mu.sum() - 1.0) > atol:
            raise ValidationError(f"`mu` sums to {mu.sum():.12g}; expected 1 within {atol:g}")

        gamma = check_float(gamma, "gamma", low=0.0, high=1.0)
        horizon = check_int(horizon, "horizon", minimum=1, allow_none=True)

        if terminal is None:
            terminal = np.zeros(S, dtype=bool)
        else:
            terminal = np.asarray(terminal)
            if terminal.dtype != bool:
                raise ArgumentTypeError(f"`terminal` must be a boolean array; got dtype {terminal.dtype}")
            if terminal.shape != (S,):
                raise ShapeError(f"`terminal` must have shape {(S,)}; got {terminal.shape}")
            terminal = terminal.copy()
            on_terminal = np.flatnonzero(terminal & (mu > 0))
            if on_terminal.size:
                raise ValidationError(
                    f"`mu` puts mass on terminal states {on_terminal.tolist()}; "
                    "episodes must start in a non-terminal state")
        if gamma == 1.0 and horizon is None and not terminal.any():
            raise ValidationError(
                "`gamma` == 1 with `horizon` None and no `terminal` states: the return is "
                "not defined; pass gamma < 1, a finite horizon, or terminal states")

        object.__setattr__(self, "_frozen", False)
        self.P = _readonly(P)
        self.R = _readonly(np.array(R, copy=True))
        self.r_sa = _readonly(np.array(r_sa, copy=True))
        self.mu = _readonly(np.array(mu, copy=True))
        self.gamma = gamma
        self.horizon = horizon
        self.terminal = _readonly(terminal)
        self.n_states = S
        self.n_actions = A
        self.is_sparse = is_sparse
        self.atol = atol
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(f"MDP is immutable; cannot set `{name}` (use MDP.replace)")
        object.__setattr__(self, name, value)

    def __repr__(self):
        kind = "sparse" if self.is_sparse else "dense"
        return (f"MDP(S={self.n_states}, A={self.n_actions}, gamma={self.gamma}, "
                f"horizon={self.horizon}, terminal={int(self.terminal.sum())}, {kind})")

    # ------------------------------------------------------------------ helpers
    def replace(self, **changes) -> "MDP":
        """A copy with some of ``P, R, mu, gamma, horizon, terminal, atol`` changed."""
        args = dict(P=self.P, R=self.R, mu=self.mu, gamma=self.gamma, horizon=self.horizon,
                    terminal=self.terminal, atol=self.atol)
        unknown = set(changes) - set(args)
        if unknown:
            raise ArgumentTypeError(f"MDP.replace got unknown fields {sorted(unknown)}; valid: {sorted(args)}")
        args.update(changes)
        return MDP(**args)

    @property
    def nonterminal(self) -> np.ndarray:
        """Float mask of shape (S,): 1 for decision states, 0 for terminal states."""
        return (~self.terminal).astype(np.float64)

    def P_dense(self) -> np.ndarray:
        """Transition tensor of shape (S, A, S) (densified if sparse)."""
        if self.is_sparse:
            return self.P.toarray().reshape(self.n_states, self.n_actions, self.n_states)
        return self.P

    def P_flat(self):
        """Transitions as a matrix of shape (S*A, S) (sparse stays sparse)."""
        if self.is_sparse:
            return self.P
        return self.P.reshape(self.n_states * self.n_actions, self.n_states)

    def transition_matrix(self, pi, *, continuing: bool = True):
        r"""State-to-state matrix :math:`P_\pi[s, s'] = \sum_a \pi(a|s) P[s, a, s']`.

        With ``continuing=True`` (default) transitions into terminal states and out of
        terminal states are removed, so that ``(I - gamma P_pi)^{-1}`` sums only over
        steps on which a decision is taken. Sparse MDPs give a CSR matrix.
        ``pi`` may be complex (complex-step differentiation).
        """
        S, A = self.n_states, self.n_actions
        if self.is_sparse:
            # row s of P_pi = sum_a pi[s,a] P[s*A + a]: a sparse (S, S*A) mixing matrix.
            mix = sp.csr_matrix((np.asarray(pi).ravel(), np.arange(S * A), np.arange(0, S * A + 1, A)),
                                shape=(S, S * A))
            P_pi = (mix @ self.P).tocsr()
            if continuing and self.terminal.any():
                keep = sp.diags(self.nonterminal)
                P_pi = (keep @ P_pi @ keep).tocsr()
            return P_pi
        P_pi = np.einsum("sa,sat->st", pi, self.P)
        if continuing and self.terminal.any():
            keep = self.nonterminal
            P_pi = P_pi * keep[:, None] * keep[None, :]
        return P_pi

    def expected_reward(self, pi) -> np.ndarray:
        r"""Reward vector :math:`r_\pi[s] = \sum_a \pi(a|s) r(s, a)`, zero on terminal states."""
        self._check_leading(pi, "pi", (2,), (self.n_states, self.n_actions))
        r_pi = np.einsum("sa,sa->s", pi, self.r_sa)
        if self.terminal.any():
            r_pi = r_pi * self.nonterminal
        return r_pi

    def next_state_expectation(self, v):
        r"""``(P v)[s, a] = sum_{s'} P[s, a, s'] v[s'] (1 - terminal[s'])``, shape (S, A).

        ``v`` has shape (S,) or (S, k) (then the result has shape (S, A, k)).
        """
        v = np.asarray(v)
        self._check_leading(v, "v", (1, 2), (self.n_states,))
        if self.terminal.any():
            v = v * (self.nonterminal if v.ndim == 1 else self.nonterminal[:, None])
        if self.is_sparse:
            out = self.P @ v
        else:
            out = self.P.reshape(self.n_states * self.n_actions, self.n_states) @ v
        return out.reshape((self.n_states, self.n_actions) + v.shape[1:])

    @staticmethod
    def _check_leading(x, name, ndims, lead):
        """Cheap shape check (no copy, no finiteness scan) for the hot-path helpers."""
        shape = x.shape if isinstance(x, np.ndarray) else np.shape(x)
        if len(shape) not in ndims or shape[:len(lead)] != lead:
            raise ShapeError(f"`{name}` must have shape {lead}{' or (S, k)' if len(lead) == 1 else ''}; "
                             f"got {shape}")

    # ------------------------------------------------------------------ conversions
    def to_mdptoolbox(self):
        """Return ``(P, R)`` in pymdptoolbox's layout: ``P`` (A, S, S), ``R`` (S, A).

        Terminal states, ``mu`` and the horizon have no place in that layout and are
        dropped; ``R`` is the expected reward ``r_sa``.
        """
        return np.ascontiguousarray(np.transpose(self.P_dense(), (1, 0, 2))), np.array(self.r_sa)

    @classmethod
    def from_mdptoolbox(cls, P, R, mu=None, gamma=0.9, horizon=None, terminal=None, **kw) -> "MDP":
        """Build from pymdptoolbox's ``P`` (A, S, S) (array or list of A matrices) and
        ``R`` of shape (S, A), (S,) or (A, S, S). ``mu`` defaults to uniform."""
        if isinstance(P, (list, tuple)) or (isinstance(P, np.ndarray) and P.dtype == object):
            if len(P) == 0 or any(np.shape(p) != np.shape(P[0]) for p in P):
                raise ShapeError("pymdptoolbox `P` must be a list of A >= 1 matrices of one shape (S, S); got "
                                 f"shapes {[np.shape(p) for p in P][:5]}")
            P = np.stack([as_float_array(p.toarray() if sp.issparse(p) else p, "P", ndim=2) for p in P])
        P = as_float_array(P, "P", ndim=3, expected="(A, S, S)")
        A, S, S2 = P.shape
        if S != S2:
            raise ShapeError(f"pymdptoolbox `P` must have shape (A, S, S); got {P.shape}")
        P_sas = np.transpose(P, (1, 0, 2))
        R = as_float_array(R, "R", ndim=(1, 2, 3))
        if R.shape == (S,):
            R = np.repeat(R[:, None], A, axis=1)
        elif R.shape == (A, S, S):
            R = np.transpose(R, (1, 0, 2))
        elif R.shape != (S, A):
            raise ShapeError(f"pymdptoolbox `R` must have shape (S,), (S, A) or (A, S, S); got {R.shape}")
        if mu is None:
            mu = np.full(S, 1.0 / S)
        return cls(P_sas, R, mu, gamma=gamma, horizon=horizon, terminal=terminal, **kw)

    def to_npz(self, path) -> None:
        """Save to an ``.npz`` file readable by :meth:`from_npz` (dense ``P``).

        ``path`` must end in ``.npz`` and its directory must exist (checked before writing).
        """
        path = check_writable_path(path, "path", suffixes=(".npz",))
        np.savez(path, P=self.P_dense(), R=self.R, mu=self.mu, gamma=self.gamma,
                 horizon=-1 if self.horizon is None else self.horizon, terminal=self.terminal)

    @classmethod
    def from_npz(cls, path) -> "MDP":
        """Load an MDP saved by :meth:`to_npz` (keys ``P, R, mu, gamma``; optional
        ``horizon`` (an integer, -1 for None) and ``terminal``).

        Files are read without pickle; a missing file raises
        :class:`~tabularpg._validation.MissingFileError` (a ``FileNotFoundError``), a file
        that is not such an archive :class:`~tabularpg._validation.FileFormatError`; both
        name the path.
        """
        path = check_readable_file(path, "path")
        expected = "an .npz archive written by MDP.to_npz (numeric arrays P, R, mu, gamma; optional horizon, terminal)"
        try:
            f = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise FileFormatError(f"`path` {path!r} is not {expected}: {type(exc).__name__}") from None
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise FileFormatError(f"`path` {path!r} holds a single array, not {expected}")
        with f:
            missing = {"P", "R", "mu", "gamma"} - set(f.files)
            if missing:
                raise FileFormatError(f"`path` {path!r} lacks keys {sorted(missing)}; has {sorted(f.files)}; "
                                      f"expected {expected}")
            try:
                data = {k: f[k] for k in ("P", "R", "mu", "gamma", "horizon", "terminal") if k in f.files}
            except Exception as exc:
                raise FileFormatError(f"`path` {path!r} holds an entry that is not a numeric array "
                                      f"({type(exc).__name__}); expected {expected}") from None
        for key in ("gamma", "horizon"):
            if key in data and data[key].shape != ():
                raise FileFormatError(f"`path` {path!r}: `{key}` must be a scalar; got shape {data[key].shape}")
        horizon = -1
        if "horizon" in data:
            if data["horizon"].dtype.kind not in "iu":
                raise FileFormatError(f"`path` {path!r}: `horizon` must be an integer (-1 for None); "
                                      f"got {data['horizon'].item()!r} of dtype {data['horizon'].dtype}")
            horizon = int(data["horizon"])
            if horizon == 0 or horizon < -1:
                raise FileFormatError(f"`path` {path!r}: `horizon` must be >= 1 or -1 (None); got {horizon}")
        terminal = None
        if "terminal" in data:
            terminal = data["terminal"]
            if terminal.dtype != bool:
                raise FileFormatError(f"`path` {path!r}: `terminal` must be a boolean array; "
                                      f"got dtype {terminal.dtype}")
        gamma = data["gamma"].item()
        try:
            return cls(data["P"], data["R"], data["mu"], gamma=gamma,
                       horizon=None if horizon < 0 else horizon, terminal=terminal)
        except (ValidationError, ArgumentTypeError) as exc:
            raise type(exc)(f"`path` {path!r} holds an invalid MDP: {exc}") from None
