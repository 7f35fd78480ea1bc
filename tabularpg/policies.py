r"""Softmax policies and their hand-derived score functions.

Both classes are softmax policies over logits that are *linear* in ``theta``:

.. math::
    \pi_\theta(a|s) = \frac{\exp z_\theta(s, a)}{\sum_b \exp z_\theta(s, b)}, \qquad
    \nabla_\theta \log \pi_\theta(a|s) = \nabla z(s, a) - \sum_b \pi_\theta(b|s) \nabla z(s, b).

* tabular: :math:`z(s, a) = \theta_{s,a}`, so :math:`\partial \log\pi(a|s) / \partial\theta_{s',b}
  = 1[s'=s] (1[b=a] - \pi(b|s))`;
* linear: :math:`z(s, a) = \theta^\top \phi(s, a)`, so
  :math:`\nabla \log\pi(a|s) = \phi(s, a) - \sum_b \pi(b|s)\phi(s, b)`.

The one operation everything else uses is the **contraction** of weights with the score,

.. math::
    g = \sum_n \sum_a w_{n,a} \nabla_\theta \log \pi_\theta(a | s_n)
      = \sum_{s,a} W_{s,a} \nabla_\theta \log\pi_\theta(a|s),
    \qquad W_{s,a} = \sum_{n: s_n = s} w_{n,a},

computed by a scatter-add into ``W`` (shape (S, A)) followed by
:math:`\mathrm{vjp}_z(W - \pi \odot W 1)`: no per-sample gradient is ever formed.
"""
from __future__ import annotations

import abc

import numpy as np
import scipy.sparse as sp

from ._validation import (
    ArgumentTypeError,
    ShapeError,
    ValidationError,
    as_float_array,
    as_rng,
    check_int,
    check_theta,
)

__all__ = ["Policy", "TabularSoftmax", "LinearSoftmax", "NeuralSoftmax", "softmax", "log_softmax"]


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable ``log softmax`` along ``axis``; complex input allowed.

    The shift uses the real part's maximum, so logits of +-1e4 give exact results and
    complex-step perturbations pass through untouched.
    """
    z, axis = _check_logits(z, axis)
    shift = np.max(z.real, axis=axis, keepdims=True)
    zs = z - shift
    return zs - np.log(np.sum(np.exp(zs), axis=axis, keepdims=True))


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``; complex input allowed."""
    z, axis = _check_logits(z, axis)
    zr = z.real
    return _normalized_exp(z, axis, shift=not (-_NO_SHIFT < zr.min() and zr.max() < _NO_SHIFT))


def _normalized_exp(z, axis, shift):
    """``exp(z) / sum exp(z)`` along ``axis``, shifted by the per-row real maximum when
    ``shift`` (without it, exp must neither overflow nor underflow to 0: ``|z| < _NO_SHIFT``;
    the global extremes that decide this are cheaper than per-row maxima, and the ratio
    is as accurate unshifted)."""
    if shift:
        e = z - np.max(z.real, axis=axis, keepdims=True)
        np.exp(e, out=e)
    else:
        e = np.exp(z)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


#: |logits| below which :func:`softmax` skips the max shift (exp(600) = 3.8e260, so a
#: sum of up to 1e40 such terms stays finite, and exp(-600) = 2.6e-261 is a normal number).
_NO_SHIFT = 600.0


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    """:func:`softmax` along the last axis for internal callers: the checks are folded
    into the range test of the unshifted path (NaN and inf fail it and go the checked way)."""
    zr = z.real
    if z.ndim and z.size and -_NO_SHIFT < zr.min() and zr.max() < _NO_SHIFT:
        return _normalized_exp(z, -1, shift=False)
    return softmax(z)


def _check_logits(z, axis):
    """Boundary check of softmax / log_softmax: a non-empty finite numeric array and an
    axis within its dimensions (real or complex; ``-inf`` logits are not finite)."""
    if isinstance(z, np.ndarray) and z.dtype.kind in "fc" and z.size and np.isfinite(z).all():
        pass  # the fast path of the internal callers
    else:
        z = as_float_array(z, "z", allow_complex=True)
    axis = check_int(axis, "axis")
    if z.ndim == 0 or not -z.ndim <= axis < z.ndim:
        raise ShapeError(f"`axis` must lie in [-{z.ndim}, {z.ndim}) for `z` of shape {z.shape}; got {axis}")
    if z.shape[axis] == 0:
        raise ShapeError(f"`z` must have at least one entry along `axis`={axis}; got shape {z.shape}")
    return z, axis


def _scatter_add(index: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """``out[k] = sum_{n: index[n] = k} weights[n]`` by ``np.bincount`` (complex-safe)."""
    if np.iscomplexobj(weights):
        return (np.bincount(index, weights.real, minlength=size)
                + 1j * np.bincount(index, weights.imag, minlength=size))
    return np.bincount(index, weights, minlength=size)


class Policy(abc.ABC):
    r"""A softmax policy over logits :math:`z_\theta(s, a)`.

    Subclasses define ``theta_shape``, :meth:`_logits`, :meth:`logits_jvp` (the logits'
    derivative at ``theta`` along a direction) and :meth:`logits_vjp` (its transpose);
    everything else (probabilities, the score, the contraction, Fisher-vector products)
    follows. For the tabular and linear classes the logits are linear in ``theta`` and the
    two derivatives do not depend on it; :class:`~tabularpg.NeuralSoftmax` backpropagates
    through a network.
    """

    n_states: int
    n_actions: int
    theta_shape: tuple

    # ----------------------------------------------------------- to implement
    @abc.abstractmethod
    def _logits(self, theta: np.ndarray) -> np.ndarray:
        """Logits ``z[s, a]``, shape (S, A); no validation."""

    @abc.abstractmethod
    def logits_jvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Directional derivative of the logits at ``theta`` along ``v``: shape
        (..., S, A) for ``v`` of shape (..., *theta_shape)."""

    @abc.abstractmethod
    def logits_vjp(self, theta: np.ndarray, w_sa: np.ndarray) -> np.ndarray:
        """``sum_{s,a} w[..., s, a] grad z(s, a)`` at ``theta``: shape (..., *theta_shape)."""

    # ----------------------------------------------------------- derived API
    @property
    def n_params(self) -> int:
        """Number of parameters, ``prod(theta_shape)``."""
        return int(np.prod(self.theta_shape))

    def zeros(self) -> np.ndarray:
        """The parameter ``theta = 0`` (the uniform policy for both built-in classes)."""
        return np.zeros(self.theta_shape)

    def check_theta(self, theta) -> np.ndarray:
        """Validate ``theta`` against ``theta_shape`` (real or complex)."""
        return check_theta(theta, self.theta_shape)

    def logits(self, theta) -> np.ndarray:
        """Logits ``z_theta(s, a)``, ndarray of shape (S, A)."""
        return self._logits(self.check_theta(theta))

    def log_probs(self, theta) -> np.ndarray:
        r"""``log pi_theta(a|s)``, ndarray of shape (S, A); stable for large logits."""
        return log_softmax(self.logits(theta))

    def probs(self, theta) -> np.ndarray:
        r"""``pi_theta(a|s)``, ndarray of shape (S, A); rows sum to one."""
        return softmax(self.logits(theta))

    def score(self, theta, states, actions) -> np.ndarray:
        r"""Score :math:`\nabla_\theta \log\pi_\theta(a|s)` for batches of ``(s, a)``.

        Parameters
        ----------
        theta : ndarray of shape ``theta_shape``
        states, actions : int arrays of the same shape ``batch``

        Returns
        -------
        ndarray of shape ``batch + theta_shape``
        """
        theta = self.check_theta(theta)
        s, a = self._check_sa(states, actions)
        pi = softmax(self._logits(theta))
        onehot = np.zeros(s.shape + (self.n_states, self.n_actions), dtype=pi.dtype)
        flat = onehot.reshape(-1, self.n_states, self.n_actions)
        idx = np.arange(s.size)
        flat[idx, s.ravel()] -= pi[s.ravel()]
        flat[idx, s.ravel(), a.ravel()] += 1.0
        return self.logits_vjp(theta, onehot)

    def log_probs_jvp(self, theta, v) -> np.ndarray:
        r"""Directional derivative of ``log pi`` along ``v``: shape (..., S, A).

        :math:`\langle \nabla \log\pi(a|s), v\rangle = \dot z(s,a) - \sum_b \pi(b|s)\dot z(s,b)`.
        """
        theta = self.check_theta(theta)
        v = self._check_leading(v, "v", self.theta_shape, "theta_shape")
        pi = softmax(self._logits(theta))
        dz = self.logits_jvp(theta, v)
        return dz - np.sum(pi * dz, axis=-1, keepdims=True)

    def contract_table(self, theta, w_sa, *, pi=None) -> np.ndarray:
        r"""``sum_{s,a} w[..., s, a] grad log pi(a|s)``, shape (..., *theta_shape).

        :math:`= \mathrm{vjp}_z\big(w - \pi \odot \sum_b w_{\cdot b}\big)`. ``pi`` may be
        passed when already computed (it must be ``probs(theta)``).
        """
        theta = self.check_theta(theta)
        w_sa = self._check_leading(w_sa, "w_sa", (self.n_states, self.n_actions), "(S, A)")
        if pi is None:
            pi = softmax(self._logits(theta))
        else:
            pi = as_float_array(pi, "pi", shape=(self.n_states, self.n_actions), allow_complex=True,
                                expected=f"(S, A) = {(self.n_states, self.n_actions)}")
        return self._contract_table(theta, w_sa, pi)

    def _contract_table(self, theta, w_sa, pi) -> np.ndarray:
        """:meth:`contract_table` without argument checks (callers pass a checked
        ``theta``, ``w_sa`` of shape (..., S, A) and ``pi = probs(theta)``)."""
        return self.logits_vjp(theta, w_sa - pi * np.sum(w_sa, axis=-1, keepdims=True))

    def contract(self, theta, states, weights, actions=None) -> np.ndarray:
        r"""Contract per-step weights with the score; result shaped like ``theta``.

        :math:`g = \sum_n \sum_a w_{n,a} \nabla\log\pi(a|s_n)` with ``weights`` of shape
        (M, A); or, when ``actions`` (M,) is given, :math:`g = \sum_n w_n
        \nabla\log\pi(a_n|s_n)` with ``weights`` of shape (M,). Implemented as a
        scatter-add into an (S, A) table (``np.bincount``) and :meth:`contract_table`.
        """
        theta = self.check_theta(theta)
        w_sa = self._aggregate(states, weights, actions)
        return self.contract_table(theta, w_sa)

    def contract_episodes(self, theta, episodes, n_episodes, states, weights, actions=None) -> np.ndarray:
        """Per-episode contractions: ndarray of shape (n_episodes, *theta_shape).

        Row ``i`` is ``contract`` over the steps with ``episodes == i``. The default
        scatters into an (n_episodes, S, A) table; classes with few parameters override
        it to avoid that table.
        """
        theta = self.check_theta(theta)
        n_episodes = check_int(n_episodes, "n_episodes", minimum=1)
        S, A = self.n_states, self.n_actions
        e, s, a, w = self._entries(episodes, states, weights, actions, n_episodes)
        w_nsa = _scatter_add((e * S + s) * A + a, w, n_episodes * S * A).reshape(n_episodes, S, A)
        return self.contract_table(theta, w_nsa)

    def sample_actions(self, theta, states, rng) -> np.ndarray:
        """Draw ``a ~ pi_theta(.|s)`` for each entry of ``states`` (inverse CDF)."""
        rng = as_rng(rng)
        theta = self.check_theta(theta)
        if np.iscomplexobj(theta):
            raise ArgumentTypeError(f"`theta` must be real to sample actions; got dtype {theta.dtype}")
        s = self._check_states(states)
        cdf = np.cumsum(softmax(self._logits(theta)), axis=1)
        u = rng.random(s.shape)
        a = np.sum(u[..., None] >= cdf[s], axis=-1)
        return np.minimum(a, self.n_actions - 1)

    # ----------------------------------------------------------- internals
    @staticmethod
    def _check_leading(x, name, trailing, what):
        """A finite (real or complex) array of shape ``(..., *trailing)``."""
        trailing = tuple(trailing)
        x = as_float_array(x, name, allow_complex=True)
        if x.ndim < len(trailing) or x.shape[x.ndim - len(trailing):] != trailing:
            raise ShapeError(f"`{name}` must have shape (..., *{what}) = (..., {', '.join(map(str, trailing))}); "
                             f"got {x.shape}")
        return x

    def _check_states(self, states) -> np.ndarray:
        s = np.asarray(states)
        if not np.issubdtype(s.dtype, np.integer):
            raise ValidationError(f"`states` must be integers; got dtype {s.dtype}")
        if s.size and (s.min() < 0 or s.max() >= self.n_states):
            raise ValidationError(f"`states` must lie in [0, {self.n_states}); got range [{s.min()}, {s.max()}]")
        return s

    def _check_sa(self, states, actions):
        s = self._check_states(states)
        a = np.asarray(actions)
        if not np.issubdtype(a.dtype, np.integer):
            raise ValidationError(f"`actions` must be integers; got dtype {a.dtype}")
        if a.shape != s.shape:
            raise ShapeError(f"`actions` must have the shape of `states` {s.shape}; got {a.shape}")
        if a.size and (a.min() < 0 or a.max() >= self.n_actions):
            raise ValidationError(f"`actions` must lie in [0, {self.n_actions}); got range [{a.min()}, {a.max()}]")
        return s, a

    def _entries(self, episodes, states, weights, actions, n_episodes):
        """Flatten (episode, state, action, weight) entries; all-action weights expand."""
        A = self.n_actions
        s = self._check_states(states).ravel()
        if episodes is None:
            e = np.zeros_like(s)
        else:
            e = np.asarray(episodes).ravel()
            if not np.issubdtype(e.dtype, np.integer):
                raise ValidationError(f"`episodes` must be integers; got dtype {e.dtype}")
        w = as_float_array(weights, "weights", allow_complex=True)
        if e.shape != s.shape:
            raise ShapeError(f"`episodes` must have the shape of `states` {np.shape(states)}; got {np.shape(episodes)}")
        e = self._check_episodes(e, n_episodes)
        if actions is None:
            if w.shape != (s.size, A):
                raise ShapeError(f"`weights` must have shape (M, A) = {(s.size, A)} when `actions` is None; got {w.shape}")
            return (np.repeat(e, A), np.repeat(s, A), np.tile(np.arange(A), s.size), w.ravel())
        _, a = self._check_sa(states, actions)
        if w.shape != np.shape(states):
            raise ShapeError(f"`weights` must have the shape of `states` {np.shape(states)}; got {w.shape}")
        return e, s, a.ravel(), w.ravel()

    @staticmethod
    def _check_episodes(e, n_episodes):
        if n_episodes is not None and e.size and (e.min() < 0 or e.max() >= n_episodes):
            raise ValidationError(f"`episodes` must lie in [0, {n_episodes}); got range [{e.min()}, {e.max()}]")
        return e

    def _aggregate(self, states, weights, actions) -> np.ndarray:
        S, A = self.n_states, self.n_actions
        _, s, a, w = self._entries(None, states, weights, actions, None)
        return _scatter_add(s * A + a, w, S * A).reshape(S, A)


class TabularSoftmax(Policy):
    r"""Tabular softmax: ``theta`` of shape (S, A), :math:`\pi(\cdot|s) = \mathrm{softmax}(\theta_s)`.

    Score: :math:`\partial\log\pi(a|s)/\partial\theta_{s',b} = 1[s'=s](1[b=a] - \pi(b|s))`.

    Examples
    --------
    >>> import numpy as np
    >>> pol = TabularSoftmax(1, 3)
    >>> theta = np.array([[0.0, np.log(2.0), np.log(3.0)]])
    >>> np.allclose(pol.probs(theta), [[1/6, 2/6, 3/6]])
    True
    >>> np.allclose(pol.score(theta, 0, 2), [[-1/6, -2/6, 1 - 3/6]])
    True
    """

    def __init__(self, n_states: int, n_actions: int):
        self.n_states = check_int(n_states, "n_states", minimum=1)
        self.n_actions = check_int(n_actions, "n_actions", minimum=1)
        self.theta_shape = (self.n_states, self.n_actions)

    def __repr__(self):
        return f"TabularSoftmax(n_states={self.n_states}, n_actions={self.n_actions})"

    def _logits(self, theta):
        return theta

    def logits_jvp(self, theta, v):
        return v

    def logits_vjp(self, theta, w_sa):
        return w_sa


class LinearSoftmax(Policy):
    r"""Linear softmax: :math:`\pi(a|s) \propto \exp(\theta^\top\phi(s, a))`.

    Parameters
    ----------
    phi : ndarray of shape (S, A, d)
        Features; ``theta`` has shape (d,).

    Notes
    -----
    Score: :math:`\nabla\log\pi(a|s) = \phi(s,a) - \sum_b \pi(b|s)\phi(s,b)`.
    """

    def __init__(self, phi):
        phi = as_float_array(phi, "phi", ndim=3)
        if min(phi.shape) == 0:
            raise ShapeError(f"`phi` must have shape (S, A, d) with S, A, d >= 1; got {phi.shape}")
        phi = np.array(phi, dtype=np.float64, copy=True)
        phi.setflags(write=False)
        self.phi = phi
        self.n_states, self.n_actions, d = phi.shape
        self.theta_shape = (d,)

    def __repr__(self):
        S, A, d = self.phi.shape
        return f"LinearSoftmax(S={S}, A={A}, d={d})"

    def _logits(self, theta):
        return self.phi @ theta

    def logits_jvp(self, theta, v):
        return np.einsum("sad,...d->...sa", self.phi, v)

    def logits_vjp(self, theta, w_sa):
        return np.einsum("...sa,sad->...d", w_sa, self.phi)

    def contract_episodes(self, theta, episodes, n_episodes, states, weights, actions=None):
        """Per-episode contractions, shape (n_episodes, d), through a sparse
        (n_episodes, S*A) weight matrix times the (S*A, d) score table: memory
        O(M + n_episodes * d), never (n_episodes, S, A)."""
        theta = self.check_theta(theta)
        n_episodes = check_int(n_episodes, "n_episodes", minimum=1)
        S, A = self.n_states, self.n_actions
        e, s, a, w = self._entries(episodes, states, weights, actions, n_episodes)
        pi = softmax(self._logits(theta))
        score_flat = (self.phi - np.einsum("sa,sad->sd", pi, self.phi)[:, None, :]).reshape(S * A, -1)
        if np.iscomplexobj(w) or np.iscomplexobj(score_flat):
            W = sp.csr_matrix((w.real, (e, s * A + a)), shape=(n_episodes, S * A))
            Wi = sp.csr_matrix((w.imag if np.iscomplexobj(w) else np.zeros_like(w), (e, s * A + a)),
                               shape=(n_episodes, S * A))
            return np.asarray(W @ score_flat) + 1j * np.asarray(Wi @ score_flat)
        W = sp.csr_matrix((w, (e, s * A + a)), shape=(n_episodes, S * A))
        return np.asarray(W @ score_flat)

    @classmethod
    def one_hot(cls, n_states: int, n_actions: int) -> "LinearSoftmax":
        """Indicator features ``phi[s, a] = e_{sA + a}``: the tabular policy as a
        linear one (``theta`` flattened)."""
        S = check_int(n_states, "n_states", minimum=1)
        A = check_int(n_actions, "n_actions", minimum=1)
        return cls(np.eye(S * A).reshape(S, A, S * A))


from ._neural import NeuralSoftmax  # noqa: E402  (subclass of Policy, defined after it)
