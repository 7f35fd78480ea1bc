r"""Neural softmax policy: logits from a multilayer perceptron, backpropagated by hand.

A network with layers :math:`\ell = 1, \dots, L` maps an input row :math:`x` to

.. math::
    a_\ell = h_{\ell-1} W_\ell + b_\ell, \qquad h_\ell = \sigma(a_\ell) \ (\ell < L), \qquad
    z = a_L, \qquad h_0 = x,

and the policy is :math:`\pi_\theta(a|s) = \mathrm{softmax}_a z_\theta(s, a)`. Two input
layouts are supported:

* state-action features ``phi`` of shape (S, A, d): one input row per pair (s, a) and one
  output, :math:`z(s, a) = f_\theta(\phi(s, a))`;
* state features ``phi`` of shape (S, d): one input row per state and A outputs,
  :math:`z(s, \cdot) = f_\theta(\phi(s))`.

Every derivative is written out by hand (no autodiff):

* **reverse mode** (:meth:`NeuralSoftmax.logits_vjp`): given output cotangents
  :math:`\bar z`, :math:`\bar a_L = \bar z`, then for :math:`\ell = L, \dots, 1`:
  :math:`\bar W_\ell = h_{\ell-1}^\top \bar a_\ell`, :math:`\bar b_\ell = 1^\top \bar a_\ell`,
  :math:`\bar h_{\ell-1} = \bar a_\ell W_\ell^\top`,
  :math:`\bar a_{\ell-1} = \bar h_{\ell-1} \odot \sigma'(a_{\ell-1})`;
* **forward mode** (:meth:`NeuralSoftmax.logits_jvp`): along a direction
  :math:`(\dot W, \dot b)`, :math:`\dot h_0 = 0`,
  :math:`\dot a_\ell = \dot h_{\ell-1} W_\ell + h_{\ell-1}\dot W_\ell + \dot b_\ell`,
  :math:`\dot h_\ell = \sigma'(a_\ell) \odot \dot a_\ell`, :math:`\dot z = \dot a_L`.

The score contraction :math:`\sum_{s,a} w_{s,a}\nabla\log\pi(a|s)` is one reverse pass with
:math:`\bar z = w - \pi \odot (w 1)` (the log-softmax's transpose Jacobian), and a
Fisher-vector product is one forward pass followed by one reverse pass.

Parameter layout
----------------
``theta`` is one flat vector: for each layer in order, ``W_l`` (shape (n_in, n_out),
row-major) then ``b_l`` (shape (n_out,)). :meth:`NeuralSoftmax.unflatten` and
:meth:`NeuralSoftmax.flatten` convert between the two.

Complex step
------------
``tanh`` is analytic, so every method accepts complex ``theta`` and complex-step
derivatives of ``log_probs`` or of ``J`` are exact to rounding. ``relu`` is evaluated as
``where(Re a > 0, a, 0)``, which carries the complex step correctly everywhere except
exactly at a kink (``Re a = 0``), where ReLU has no derivative anyway.
"""
from __future__ import annotations

import numpy as np

from ._validation import ShapeError, ValidationError, as_float_array, as_rng, check_int
from .policies import Policy, _scatter_add, softmax

__all__ = ["NeuralSoftmax"]


def _tanh(a):
    return np.tanh(a)


def _tanh_prime(a, h):
    return 1.0 - h * h


def _relu(a):
    return np.where(a.real > 0, a, 0.0)


def _relu_prime(a, h):
    return (a.real > 0).astype(np.float64)


_ACTIVATIONS = {"tanh": (_tanh, _tanh_prime), "relu": (_relu, _relu_prime)}


class NeuralSoftmax(Policy):
    r"""Softmax policy whose logits are a multilayer perceptron of fixed features.

    Parameters
    ----------
    phi : ndarray of shape (S, A, d) or (S, d)
        State-action features (one scalar output per pair) or state features (one output
        per action).
    hidden : sequence of int, default (16,)
        Hidden layer widths; ``()`` gives a network without hidden layers (for
        state-action features, exactly :class:`~tabularpg.LinearSoftmax` plus a bias,
        which cancels in the softmax).
    activation : {"tanh", "relu"}, default "tanh"
        Hidden-layer nonlinearity. ``tanh`` is analytic (complex-step safe everywhere);
        ``relu`` is complex-step safe away from its kink.
    n_actions : int, optional
        Required with state features (S, d); must equal ``A`` if given with (S, A, d).

    Notes
    -----
    ``theta`` has shape ``(n_params,)``; its layout is described in :meth:`unflatten`.
    All derivatives are hand-written forward-mode (:meth:`logits_jvp`) and reverse-mode
    (:meth:`logits_vjp`) passes; see the module docstring for the recursions.

    Examples
    --------
    >>> import numpy as np
    >>> from tabularpg import NeuralSoftmax
    >>> pol = NeuralSoftmax(np.eye(3), hidden=(4,), n_actions=2)      # one-hot states
    >>> theta = pol.init(rng=0)
    >>> theta.shape, pol.probs(theta).shape
    ((26,), (3, 2))
    >>> [w.shape for w, b in pol.unflatten(theta)]
    [(3, 4), (4, 2)]
    >>> h = 1e-30                                      # complex step along theta[5]
    >>> e = np.zeros_like(theta); e[5] = 1.0
    >>> cs = pol.log_probs(theta + 1j * h * e).imag / h
    >>> bool(np.allclose(pol.score(theta, 1, 0)[5], cs[1, 0], rtol=1e-12))
    True
    """

    def __init__(self, phi, hidden=(16,), *, activation: str = "tanh", n_actions=None):
        phi = as_float_array(phi, "phi")
        if phi.ndim == 3:
            S, A, d = phi.shape
            if n_actions is not None and check_int(n_actions, "n_actions", minimum=1) != A:
                raise ShapeError(f"`n_actions`={n_actions} does not match `phi` of shape {phi.shape}")
            self._state_input = False
            x = phi.reshape(S * A, d)
            n_out = 1
        elif phi.ndim == 2:
            if n_actions is None:
                raise ValidationError("`n_actions` is required when `phi` has shape (S, d) (state features)")
            A = check_int(n_actions, "n_actions", minimum=1)
            S, d = phi.shape
            self._state_input = True
            x = phi
            n_out = A
        else:
            raise ShapeError(f"`phi` must have shape (S, A, d) or (S, d); got {phi.shape}")
        if min(phi.shape) == 0:
            raise ShapeError(f"`phi` must have no empty axis; got shape {phi.shape}")
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise ValidationError(f"`hidden` must be a sequence of positive ints; got {hidden!r}")
        hidden = tuple(check_int(h, f"hidden[{i}]", minimum=1) for i, h in enumerate(hidden))
        if not isinstance(activation, str) or activation not in _ACTIVATIONS:
            raise ValidationError(f"`activation` must be one of {sorted(_ACTIVATIONS)}; got {activation!r}")
        x = np.array(x, dtype=np.float64, copy=True)
        x.setflags(write=False)
        self.phi = x.reshape(phi.shape)
        self._x = x
        self.hidden = hidden
        self.activation = activation
        self._act, self._act_prime = _ACTIVATIONS[activation]
        self.n_states, self.n_actions = S, A
        self.layer_sizes = (d,) + hidden + (n_out,)
        self._slices = []
        k = 0
        for n_in, n_o in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            self._slices.append((slice(k, k + n_in * n_o), (n_in, n_o), slice(k + n_in * n_o, k + n_in * n_o + n_o)))
            k += n_in * n_o + n_o
        self.theta_shape = (k,)
        self._cache = None

    def __repr__(self):
        kind = "state" if self._state_input else "state-action"
        return (f"NeuralSoftmax(S={self.n_states}, A={self.n_actions}, layers={self.layer_sizes}, "
                f"activation={self.activation!r}, input={kind!r})")

    # ------------------------------------------------------------ parameters
    def unflatten(self, theta) -> list:
        """Split a flat ``theta`` (or a batch (..., n_params)) into ``[(W_1, b_1), ...]``.

        ``W_l`` has shape (..., n_in, n_out) and ``b_l`` (..., n_out); both are views.
        """
        theta = np.asarray(theta)
        if theta.shape[-1:] != self.theta_shape:
            raise ShapeError(f"`theta` must have last axis of length {self.theta_shape[0]}; got shape {theta.shape}")
        lead = theta.shape[:-1]
        return [(theta[..., w].reshape(lead + shape), theta[..., b]) for w, shape, b in self._slices]

    def flatten(self, layers) -> np.ndarray:
        """Inverse of :meth:`unflatten`: concatenate ``[(W_1, b_1), ...]`` into ``theta``."""
        layers = list(layers)
        if len(layers) != len(self._slices):
            raise ShapeError(f"`layers` must have {len(self._slices)} (W, b) pairs; got {len(layers)}")
        parts = []
        for i, ((W, b), (_, shape, _)) in enumerate(zip(layers, self._slices)):
            W, b = np.asarray(W), np.asarray(b)
            if W.shape[-2:] != shape or b.shape[-1:] != shape[1:]:
                raise ShapeError(f"layer {i} must have W of shape {shape} and b of shape {shape[1:]}; "
                                 f"got {W.shape} and {b.shape}")
            parts += [W.reshape(W.shape[:-2] + (-1,)), b]
        return np.concatenate(parts, axis=-1)

    def init(self, rng=0, *, scale: float = 1.0) -> np.ndarray:
        r"""A seeded random ``theta``: weights :math:`N(0, \mathrm{scale}^2 / n_{in})`, biases 0."""
        rng = as_rng(rng)
        layers = [(rng.normal(scale=scale / np.sqrt(shape[0]), size=shape), np.zeros(shape[1]))
                  for _, shape, _ in self._slices]
        return self.flatten(layers)

    # ------------------------------------------------------------ passes
    def _forward(self, theta):
        """Pre-activations ``a_l`` and activations ``h_l`` (h_0 = inputs); logits last.

        The last forward pass is cached (keyed by a copy of ``theta``), so the exact
        gradient's ``probs`` and contraction share one pass.
        """
        theta = np.asarray(theta)
        cached = self._cache
        if cached is not None and cached[0].dtype == theta.dtype and np.array_equal(cached[0], theta):
            return cached[1], cached[2]
        key = np.array(theta, copy=True)
        layers = self.unflatten(key)
        h = self._x
        acts = [(None, h)]
        for i, (W, b) in enumerate(layers):
            a = h @ W + b
            h = self._act(a) if i < len(layers) - 1 else a
            acts.append((a, h))
        self._cache = (key, layers, acts)
        return layers, acts

    def _to_sa(self, z):
        """Network outputs (..., R, n_out) -> logits (..., S, A)."""
        return z.reshape(z.shape[:-2] + (self.n_states, self.n_actions))

    def _from_sa(self, w_sa):
        """Cotangents (..., S, A) -> output cotangents (..., R, n_out)."""
        if self._state_input:
            return w_sa
        return w_sa.reshape(w_sa.shape[:-2] + (self.n_states * self.n_actions, 1))

    def _logits(self, theta):
        _, acts = self._forward(theta)
        return self._to_sa(acts[-1][1])

    def logits_jvp(self, theta, v) -> np.ndarray:
        r"""Forward mode: :math:`\dot z` along ``v`` (shape (..., n_params)); returns (..., S, A)."""
        layers, acts = self._forward(np.asarray(theta))
        dlayers = self.unflatten(np.asarray(v))
        dh = None
        for i, ((W, _), (dW, db)) in enumerate(zip(layers, dlayers)):
            h_prev = acts[i][1]
            da = np.matmul(h_prev, dW) + db[..., None, :]
            if dh is not None:
                da = da + dh @ W
            if i < len(layers) - 1:
                a, h = acts[i + 1]
                dh = self._act_prime(a, h) * da
        return self._to_sa(da)

    def logits_vjp(self, theta, w_sa) -> np.ndarray:
        r"""Reverse mode: :math:`\sum_{s,a} w[..., s, a] \nabla z(s, a)`, shape (..., n_params)."""
        layers, acts = self._forward(np.asarray(theta))
        return self._backward(layers, acts, self._from_sa(np.asarray(w_sa)))

    def _backward(self, layers, acts, abar, rows=None):
        """Reverse pass from output cotangents ``abar`` (..., R', n_out).

        With ``rows`` (shape (..., R')) the cotangents belong to those input rows only
        (gathered activations), so a batch of sparse per-episode tables costs
        O(entries * width) instead of O(batch * S * A * width).
        """
        grads = []
        for i in range(len(layers) - 1, -1, -1):
            W, _ = layers[i]
            h_prev = acts[i][1] if rows is None else acts[i][1][rows]
            grads.append((np.matmul(np.swapaxes(h_prev, -1, -2), abar), abar.sum(axis=-2)))
            if i:
                a, h = acts[i]
                if rows is not None:
                    a, h = a[rows], h[rows]
                abar = (abar @ W.T) * self._act_prime(a, h)
        return self.flatten(grads[::-1])

    # ------------------------------------------------------------ policy API
    def score(self, theta, states, actions) -> np.ndarray:
        """Scores of a batch of ``(s, a)`` (shape ``batch + (n_params,)``): one reverse pass
        over the gathered rows (:meth:`contract_episodes` with one entry per pair), never a
        (batch, S, A) table."""
        theta = self.check_theta(theta)
        s, a = self._check_sa(states, actions)
        out = self.contract_episodes(theta, np.arange(s.size), s.size, s.ravel(), np.ones(s.size), a.ravel())
        return out.reshape(s.shape + self.theta_shape)

    def contract_episodes(self, theta, episodes, n_episodes, states, weights, actions=None) -> np.ndarray:
        """Per-episode contractions, shape (n_episodes, n_params), in one reverse pass.

        The weights are summed into (episode, state) cells (a scatter-add), each cell's
        cotangent :math:`w - \\pi(\\cdot|s)\\sum_b w_b` is padded into an
        (n_episodes, cells per episode, A) array, and the reverse pass runs on the
        activations of those cells only: memory O(cells * width + n_episodes * n_params),
        never (n_episodes, S, A).
        """
        theta = self.check_theta(theta)
        n_episodes = check_int(n_episodes, "n_episodes", minimum=1)   # as Policy.contract_episodes
        S, A = self.n_states, self.n_actions
        e, s, a, w = self._entries(episodes, states, weights, actions, n_episodes)
        keys, inv = np.unique(e.astype(np.int64) * S + s, return_inverse=True)
        cell = _scatter_add(inv * A + a, w, keys.size * A).reshape(keys.size, A)
        ce, cs = keys // S, keys % S
        counts = np.bincount(ce, minlength=n_episodes)
        width = int(counts.max())
        start = np.concatenate(([0], np.cumsum(counts)[:-1]))
        slot = np.arange(keys.size) - start[ce]             # keys are sorted by episode
        layers, acts = self._forward(theta)
        pi = softmax(self._to_sa(acts[-1][1]))
        zbar = cell - pi[cs] * cell.sum(axis=1, keepdims=True)
        pad_z = np.zeros((n_episodes, width, A), dtype=zbar.dtype)
        pad_z[ce, slot] = zbar
        pad_s = np.zeros((n_episodes, width), dtype=np.int64)
        pad_s[ce, slot] = cs
        if self._state_input:
            return self._backward(layers, acts, pad_z, rows=pad_s)
        rows = (pad_s[..., None] * A + np.arange(A)).reshape(n_episodes, width * A)
        return self._backward(layers, acts, pad_z.reshape(n_episodes, width * A, 1), rows=rows)
