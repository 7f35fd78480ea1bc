r"""The on-policy RLHF algorithms as weights on sampled responses, and their exact expectations.

Every update here has the library's one form (estimators make weights, the policy
contracts them): per prompt :math:`x`, ``k`` responses :math:`y_1..y_k \sim \pi_\theta(\cdot|x)`,

.. math::
    g = \frac1n\sum_{j=1}^{n}\sum_{i=1}^{k} c_i(x_j, y_{j,1..k})\,\nabla\log\pi_\theta(y_{j,i}|x_j),

with :math:`r` the optimized reward (a reward model), :math:`l = \log\pi_\theta/\pi_{ref}`,
the KL-penalized reward :math:`R = r - \beta l` and (at the current :math:`\theta`, i.e.
the first epoch, every ratio :math:`\pi_\theta/\pi_{old} = 1`):

=============  ==================================================================================
``reinforce``  :math:`c_i = (R_i - b)/k` with a constant baseline ``b`` (Williams 1992; Ahmadian et al. 2024)
``ppo``        :math:`c_i = (R_i - V(x))/k` with a critic :math:`V` (Schulman et al. 2017); later epochs
               clip the ratio (:func:`tabularpg.objectives.sample_surrogate_weights`)
``rloo``       :math:`c_i = (R_i - \frac1{k-1}\sum_{j\ne i}R_j)/k`: the leave-one-out baseline of
               :mod:`tabularpg.estimators` (Kool et al. 2019; Ahmadian et al. 2024)
``rebel``      pairs :math:`(y_1, y_2), (y_3, y_4), ...`: :math:`c_{1} = -c_{2} = (R_1 - R_2)/(\eta\,k/2)`,
               minus the gradient of REBEL's squared regression loss
               :math:`\frac12(\frac1\eta(\log\frac{\pi_\theta(y_1)}{\pi_t(y_1)}
               - \log\frac{\pi_\theta(y_2)}{\pi_t(y_2)})
               - (R_1 - R_2))^2` at :math:`\theta_t` (Gao et al. 2024); the actual REBEL step solves the
               regression (:func:`rebel_step`)
``grpo``       :math:`c_i = \frac{1}{k|y_i|}\big(\frac{r_i - \bar r}{\mathrm{std}(r) + \epsilon}
               - \beta(1 - \frac{\pi_{ref}(y_i)}{\pi_\theta(y_i)})\big)` (Shao et al. 2024; the KL term is
               the gradient of the "k3" estimator :math:`\frac{\pi_{ref}}{\pi} - \log\frac{\pi_{ref}}{\pi} - 1`)
``dr_grpo``    :math:`c_i = \frac{1}{k L_{max}}\big(r_i - \bar r
               - \beta(1 - \frac{\pi_{ref}(y_i)}{\pi_\theta(y_i)})\big)`
               (Liu et al. 2025: no std and no per-response length normalization)
=============  ==================================================================================

``std`` is the sample standard deviation (``ddof=1``) of the group's rewards.

The exact expectation of each update (:func:`expected_update`) enumerates the
:math:`Y^k` ordered k-tuples of responses per prompt. Facts it exposes (tests and
``docs/derivations.md``):

* ``reinforce``, ``ppo`` (first epoch) and ``rloo`` are unbiased for :math:`\nabla J_\beta`
  (:meth:`KLProblem.gradient`), since :math:`E[\nabla\log\pi] = 0` absorbs the :math:`-\beta` term of
  :math:`\nabla(\beta l)` and any baseline independent of the response;
* ``rebel``'s direction is :math:`\frac{2}{\eta}\nabla J_\beta` (for ``k = 2`` it is
  :math:`\frac2\eta` times RLOO's ``k = 2`` weights, sample by sample);
* ``dr_grpo``'s reward part is :math:`\frac{1 - 1/k}{L_{max}}\nabla E_\pi[r]`; ``grpo``'s is not
  parallel to it (:func:`normalization_bias`): dividing by the group's std weights the
  prompts and the tuples unequally, and ``1/|y|`` favors short responses;
* the k3 term's expectation is :math:`-\beta\sum_y\pi(y)(1 - \pi_{ref}(y)/\pi(y))\nabla\log\pi(y) =
  \beta\sum_y\pi_{ref}(y)\nabla\log\pi(y) = -\beta\nabla KL(\pi_{ref}\|\pi)`: GRPO's KL
  estimator is unbiased for the value of :math:`KL(\pi\|\pi_{ref})` but its gradient is
  that of the *reverse* KL.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .. import exact, optim
from .._validation import (
    ArgumentTypeError,
    EnumerationTooLargeError,
    ShapeError,
    ValidationError,
    as_rng,
    check_float,
    check_int,
)
from ..policies import Policy
from ..sampling import sample
from .world import KLProblem

__all__ = [
    "ALGORITHMS",
    "BiasReport",
    "expected_update",
    "group_weights",
    "normalization_bias",
    "rebel_population_step",
    "rebel_step",
    "sample_groups",
    "sampled_update",
    "update_moments",
]

#: On-policy algorithms with a sampled update and its exact expectation.
ALGORITHMS = ("reinforce", "ppo", "rloo", "rebel", "grpo", "dr_grpo")
_GROUP = ("rloo", "grpo", "dr_grpo")
#: The keyword options of :func:`group_weights` each algorithm uses.
_ALGORITHM_OPTIONS = {"reinforce": ("baseline",), "ppo": ("baseline",), "rloo": (), "rebel": ("eta",),
                      "grpo": ("eps",), "dr_grpo": ("max_length",)}


def _check_algorithm(algorithm):
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValidationError(f"`algorithm` must be one of {ALGORITHMS}; got {algorithm!r}")
    return algorithm


def _check_k(algorithm, k):
    k = check_int(k, "k", minimum=1)
    if algorithm in _GROUP and k < 2:
        raise ValidationError(f"`k` must be >= 2 for {algorithm!r} (its baseline needs the other responses "
                              f"of the group); got {k}")
    if algorithm == "rebel" and k % 2:
        raise ValidationError(f"`k` must be even for 'rebel' (responses are regressed in pairs); got {k}")
    return k


def group_weights(algorithm: str, reward, log_ratio, *, beta: float, length=None, baseline=0.0,
                  eta: float = 1.0, eps: float = 1e-4, max_length: float = 1.0) -> np.ndarray:
    r"""Per-response weights :math:`c_i` of one group (module docstring table).

    Parameters
    ----------
    algorithm : str
        One of :data:`ALGORITHMS`.
    reward, log_ratio : ndarray of shape (..., k)
        :math:`r(x, y_i)` and :math:`\log\pi_\theta(y_i|x) - \log\pi_{ref}(y_i|x)` of the group.
    beta : float
        KL coefficient, >= 0 (0 isolates the reward part).
    length : ndarray of shape (..., k), optional
        :math:`|y_i|` (``grpo`` only); None means 1.
    baseline : float or ndarray broadcastable to (..., 1)
        ``b`` for ``reinforce``, :math:`V(x)` for ``ppo``.
    eta : float
        REBEL's step :math:`\eta > 0`.
    eps : float
        GRPO's :math:`\epsilon \ge 0` in the std denominator.
    max_length : float
        Dr. GRPO's constant normalizer :math:`L_{max} > 0` (Liu et al. use the generation
        budget; any constant only rescales the step, default 1).

    Returns
    -------
    ndarray of shape (..., k)
    """
    algorithm = _check_algorithm(algorithm)
    r = np.asarray(reward, dtype=float)
    lr = np.asarray(log_ratio, dtype=float)
    if r.ndim < 1 or lr.shape != r.shape:
        raise ShapeError(f"`log_ratio` must have the shape of `reward` {r.shape}; got {lr.shape}")
    k = _check_k(algorithm, r.shape[-1])
    beta = check_float(beta, "beta", low=0.0)
    if algorithm in ("reinforce", "ppo"):
        return (r - beta * lr - np.asarray(baseline, dtype=float)) / k
    if algorithm == "rloo":
        R = r - beta * lr
        return (R - (R.sum(axis=-1, keepdims=True) - R) / (k - 1)) / k
    if algorithm == "rebel":
        eta = check_float(eta, "eta")
        if eta <= 0:
            raise ValidationError(f"`eta` must be > 0; got {eta}")
        R = r - beta * lr
        diff = (R[..., 0::2] - R[..., 1::2]) / (eta * (k // 2))
        c = np.empty_like(R)
        c[..., 0::2], c[..., 1::2] = diff, -diff
        return c
    kl_w = -beta * -np.expm1(-lr)  # -beta (1 - pi_ref / pi)
    centered = r - r.mean(axis=-1, keepdims=True)
    if algorithm == "grpo":
        eps = check_float(eps, "eps", low=0.0)
        std = r.std(axis=-1, ddof=1, keepdims=True)
        if eps == 0 and np.any(std == 0):
            raise ValidationError("`eps` = 0 divides by a zero std (a group with equal rewards); pass eps > 0")
        L: float | np.ndarray = 1.0
        if length is not None:
            lengths = np.asarray(length, dtype=float)
            if lengths.shape != r.shape or not np.all(lengths >= 1):
                raise ValidationError(
                    f"`length` must have the shape of `reward` {r.shape} with entries >= 1; got shape "
                    f"{lengths.shape}" + (f", min {lengths.min():g}" if lengths.shape == r.shape else ""))
            L = lengths
        return (centered / (std + eps) + kl_w) / (k * L)
    max_length = check_float(max_length, "max_length")
    if max_length <= 0:
        raise ValidationError(f"`max_length` must be > 0; got {max_length}")
    return (centered + kl_w) / (k * max_length)


def _check_policy(policy, problem):
    if not isinstance(policy, Policy):
        raise ArgumentTypeError(f"`policy` must be a tabularpg Policy; got {type(policy).__name__}")
    if not isinstance(problem, KLProblem):
        raise ArgumentTypeError(f"`problem` must be a KLProblem; got {type(problem).__name__}")
    if (policy.n_states, policy.n_actions) != problem.shape:
        raise ShapeError(f"`policy` must have (n_states, n_actions) = {problem.shape} (prompts, responses); "
                         f"got {(policy.n_states, policy.n_actions)}")


def _options(algorithm, problem, beta, options):
    """Group-weight keyword arguments with the problem's defaults filled in; an option the
    algorithm does not use is refused (it would be silently ignored)."""
    allowed = _ALGORITHM_OPTIONS[algorithm]
    unknown = set(options) - set(allowed)
    if unknown:
        raise ValidationError(f"unknown option(s) {sorted(unknown)} for {algorithm!r}; allowed: "
                              f"{', '.join(allowed) or 'none'}")
    opts = dict(options)
    opts["beta"] = problem.beta if beta is None else beta
    return opts


def _per_prompt(value, x):
    """A per-prompt array (X,) picked at ``x`` and given a trailing axis; scalars pass."""
    v = np.asarray(value, dtype=float)
    return v[x][..., None] if v.ndim == 1 else v


def sample_groups(problem: KLProblem, policy: Policy, theta, n_prompts: int, k: int, *, rng):
    r"""``n_prompts`` prompts :math:`x \sim \mu` and ``k`` responses each from :math:`\pi_\theta`,
    drawn with :func:`tabularpg.sample` on :attr:`KLProblem.mdp` (one-step episodes started
    at the prompts).

    Returns ``(x, y, batch)``: ``x`` (n,), ``y`` (n, k) and the :class:`~tabularpg.Batch`
    of ``n * k`` one-step episodes (episode ``j * k + i`` is response ``i`` to prompt ``j``;
    its reward is the optimized reward).
    """
    _check_policy(policy, problem)
    n = check_int(n_prompts, "n_prompts", minimum=1)
    k = check_int(k, "k", minimum=1)
    rng = as_rng(rng)
    x = rng.choice(problem.shape[0], size=n, p=problem.mu)
    batch = sample(problem.mdp, policy, theta, n * k, rng=rng, start=np.repeat(x, k))
    return x, batch.actions[:, 0].reshape(n, k).astype(np.intp), batch


def sampled_update(algorithm: str, problem: KLProblem, policy: Policy, theta, x, y, *, beta=None,
                   **options) -> np.ndarray:
    r"""The sampled update direction :math:`g` on groups ``y`` (n, k) of prompts ``x`` (n,),
    shaped like ``theta`` (module docstring). ``beta`` overrides ``problem.beta`` (0 gives
    the reward part); ``options`` go to :func:`group_weights` (``baseline`` may be a
    per-prompt array of shape (X,))."""
    algorithm = _check_algorithm(algorithm)
    _check_policy(policy, problem)
    theta = policy.check_theta(theta)
    x = np.asarray(x)
    y = np.asarray(y)
    if y.ndim != 2 or x.shape != (y.shape[0],):
        raise ShapeError(f"`y` must have shape (n, k) with `x` of shape (n,); got {y.shape} and {x.shape}")
    opts = _options(algorithm, problem, beta, options)
    if "baseline" in opts:
        opts["baseline"] = _per_prompt(opts["baseline"], x)
    log_ratio = policy.log_probs(theta) - np.log(problem.pi_ref)    # log-probabilities: finite where pi underflows
    xx = x[:, None]
    length = problem.length[xx, y] if (problem.length is not None and algorithm == "grpo") else None
    c = group_weights(algorithm, problem.reward[xx, y], log_ratio[xx, y], length=length, **opts)
    n, k = y.shape
    return policy.contract(theta, np.repeat(x, k), c.ravel() / n, y.ravel())


def _tuples(n_responses, k, n_prompts, max_terms):
    terms = n_prompts * n_responses ** k * k
    if terms > max_terms:
        raise EnumerationTooLargeError(f"enumerating k-tuples needs X * Y^k * k = {terms:.3g} terms "
                                       f"(X={n_prompts}, Y={n_responses}, k={k}); limit `max_terms`={max_terms:g}")
    return np.array(list(itertools.product(range(n_responses), repeat=k)), dtype=np.intp).reshape(-1, k)


def _enumerated_weights(algorithm, problem, policy, theta, k, beta, options, max_terms):
    """Tuples (M, k), tuple probabilities (X, M) and weights (X, M, k)."""
    algorithm = _check_algorithm(algorithm)
    _check_policy(policy, problem)
    k = _check_k(algorithm, k)
    theta = policy.check_theta(theta)
    X, Y = problem.shape
    T = _tuples(Y, k, X, max_terms)
    opts = _options(algorithm, problem, beta, options)
    if "baseline" in opts:
        b = np.asarray(opts["baseline"], dtype=float)
        opts["baseline"] = b[:, None, None] if b.ndim == 1 else b
    logp = policy.log_probs(theta)
    log_ratio = logp - np.log(problem.pi_ref)
    p = np.exp(logp[:, T].sum(axis=-1))                     # (X, M)
    length = problem.length[:, T] if (problem.length is not None and algorithm == "grpo") else None
    c = group_weights(algorithm, problem.reward[:, T], log_ratio[:, T], length=length, **opts)
    return theta, T, p, c


def expected_update(algorithm: str, problem: KLProblem, policy: Policy, theta, *, k: int, beta=None,
                    max_terms: float = 5e7, **options) -> np.ndarray:
    r"""Exact expectation of :func:`sampled_update` (any ``n_prompts``), shaped like ``theta``.

    .. math::
        E[g] = \sum_x\mu(x)\sum_{(y_1..y_k)\in Y^k}\prod_i\pi_\theta(y_i|x)\sum_i c_i\nabla\log\pi_\theta(y_i|x),

    computed as one contraction of the table :math:`W(x, y) = \mu(x)\sum_{t}\prod_i\pi(t_i|x)
    \sum_i c_i(t) 1[t_i = y]`. Raises :class:`~tabularpg.EnumerationTooLargeError` beyond
    ``max_terms`` (:math:`X Y^k k`).

    Examples
    --------
    RLOO is unbiased for the gradient of :math:`J_\beta`:

    >>> import numpy as np, tabularpg as tpg
    >>> from tabularpg.rlhf import KLProblem, random_world
    >>> w = random_world(2, 3, rng=0)
    >>> prob = KLProblem(w.mu, w.reward, np.full((2, 3), 1 / 3), beta=0.5)
    >>> pol = tpg.TabularSoftmax(2, 3)
    >>> theta = np.random.default_rng(1).normal(size=(2, 3))
    >>> g = expected_update("rloo", prob, pol, theta, k=3)
    >>> bool(np.allclose(g, prob.gradient(pol, theta), atol=1e-12))
    True
    """
    theta, T, p, c = _enumerated_weights(algorithm, problem, policy, theta, k, beta, options, max_terms)
    X, Y = problem.shape
    Wc = problem.mu[:, None, None] * p[..., None] * c        # (X, M, k)
    idx = (np.arange(X)[:, None, None] * Y + T[None]).ravel()
    W = np.bincount(idx, Wc.ravel(), minlength=X * Y).reshape(X, Y)
    return policy.contract_table(theta, W)


def update_moments(algorithm: str, problem: KLProblem, policy: Policy, theta, *, k: int, beta=None,
                   max_terms: float = 2e7, **options):
    r"""Exact mean and covariance of :func:`sampled_update` with ``n_prompts = 1``, by
    enumerating the outcomes :math:`(x, y_1..y_k)` (probability :math:`\mu(x)\prod\pi(y_i|x)`).

    Returns ``(mean, cov)``: ndarrays of shape (p,) and (p, p), ``p = theta.size``. For ``n``
    prompts the mean is the same and the covariance is ``cov / n``.

    The update of each of the :math:`X Y^k` outcomes is one "episode" of
    :meth:`~tabularpg.Policy.contract_episodes` (``k`` weighted responses to one prompt), so
    the largest array is the (X Y^k, p) table of updates; refused beyond ``max_terms`` entries.
    """
    theta, T, p, c = _enumerated_weights(algorithm, problem, policy, theta, k, beta, options, max_terms)
    X, Y = problem.shape
    M, k = T.shape
    if X * M * policy.n_params > max_terms:
        raise EnumerationTooLargeError(f"the per-outcome updates need X Y^k p = {X * M * policy.n_params:.3g} "
                                       f"entries (X={X}, Y={Y}, k={k}, p={policy.n_params}); "
                                       f"limit `max_terms`={max_terms:g}")
    outcome = np.repeat(np.arange(X * M), k)                   # outcome x * M + m, k responses each
    g = policy.contract_episodes(theta, outcome, X * M, np.repeat(np.arange(X), M * k), c.ravel(),
                                 np.tile(T.ravel(), X)).reshape(X * M, -1)
    prob = (problem.mu[:, None] * p).ravel()
    mean = prob @ g
    dev = g - mean
    return mean, (dev * prob[:, None]).T @ dev


@dataclass(frozen=True, eq=False)
class BiasReport:
    """Expected reward-part update of an algorithm against :math:`\\nabla E_\\pi[r]`:
    ``cosine``, ``norm_ratio`` = ``|E g| / |grad|``, and both vectors."""

    algorithm: str
    k: int
    cosine: float
    norm_ratio: float
    expected: np.ndarray
    gradient: np.ndarray


def normalization_bias(algorithm: str, problem: KLProblem, policy: Policy, theta, *, k: int,
                       **options) -> BiasReport:
    r"""How far the expected reward part (``beta = 0``) of ``algorithm``'s update is from the
    exact gradient of :math:`E_{x\sim\mu,y\sim\pi_\theta}[r(x,y)]`
    (:func:`tabularpg.exact.policy_gradient` on :attr:`KLProblem.mdp`).

    ``dr_grpo`` and ``rloo`` give cosine 1 (norm ratios :math:`(1-1/k)/L_{max}` and 1);
    ``grpo``'s cosine is below 1 in general (Liu et al. 2025).

    Examples
    --------
    >>> import numpy as np, tabularpg as tpg
    >>> from tabularpg.rlhf import KLProblem, random_world
    >>> w = random_world(3, 3, rng=2)
    >>> prob = KLProblem(w.mu, w.reward, np.full((3, 3), 1 / 3), beta=0.1)
    >>> pol, theta = tpg.TabularSoftmax(3, 3), np.zeros((3, 3))
    >>> dr = normalization_bias("dr_grpo", prob, pol, theta, k=3)
    >>> round(dr.cosine, 10), round(dr.norm_ratio, 10)   # (1 - 1/3) / L_max with L_max = 1
    (1.0, 0.6666666667)
    >>> normalization_bias("grpo", prob, pol, theta, k=3).cosine < 0.999
    True
    """
    g = np.real(exact.policy_gradient(problem.mdp, policy, theta)).ravel()
    e = expected_update(algorithm, problem, policy, theta, k=k, beta=0.0, **options).ravel()
    ng, ne = np.linalg.norm(g), np.linalg.norm(e)
    cos = float(e @ g / (ng * ne)) if ng > 0 and ne > 0 else float("nan")
    return BiasReport(algorithm=algorithm, k=int(k), cosine=cos, norm_ratio=float(ne / ng) if ng > 0 else float("nan"),
                      expected=e.reshape(np.shape(theta)), gradient=g.reshape(np.shape(theta)))


# ----------------------------------------------------------------------------- REBEL
def _rebel_solve(policy, theta, x, y1, y2, target, w, eta, cg_iters, tol):
    r"""Weighted least squares :math:`\min_\delta\sum_i w_i(\frac1\eta\Delta z_i(\delta) - t_i)^2`
    by conjugate gradient on the normal equations :math:`J^\top WJ\delta = \eta J^\top W t`.

    :math:`\Delta z_i(\delta) = \langle\nabla z(x_i,y_{1i}) - \nabla z(x_i, y_{2i}), \delta\rangle`
    (the difference of log-probabilities is the difference of logits), and
    :math:`J^\top c` is the contraction of ``c`` on ``y1`` minus that on ``y2``.
    """
    xs = np.concatenate([x, x])
    ys = np.concatenate([y1, y2])
    shape = policy.theta_shape

    def jt(c):
        return policy.contract(theta, xs, np.concatenate([c, -c]), ys).ravel()

    def matvec(v):
        dz = policy.logits_jvp(theta, v.reshape(shape))
        return jt(w * (dz[x, y1] - dz[x, y2]))

    b = eta * jt(w * target)
    nb = float(np.linalg.norm(b))
    if nb == 0:
        return np.array(theta, dtype=float, copy=True)
    delta = optim.conjugate_gradient(matvec, b, n_iter=cg_iters, tol=tol * nb)
    return theta + delta.reshape(shape)


def rebel_step(problem: KLProblem, policy: Policy, theta, x, y, *, eta: float, cg_iters: int = 200,
               tol: float = 1e-10) -> np.ndarray:
    r"""One REBEL iteration (Gao et al. 2024, Algorithm 1) on sampled pairs.

    .. math::
        \theta_{t+1} = \arg\min_\theta \sum_{i}\Big(\frac1\eta\Big(
        \log\frac{\pi_\theta(y_i|x_i)}{\pi_{\theta_t}(y_i|x_i)}
        - \log\frac{\pi_\theta(y'_i|x_i)}{\pi_{\theta_t}(y'_i|x_i)}\Big) - \big(R(x_i, y_i) - R(x_i, y'_i)\big)\Big)^2,

    with the KL-penalized reward :math:`R = r - \beta\log(\pi_{\theta_t}/\pi_{ref})`. For
    logits linear in :math:`\theta` (:class:`~tabularpg.TabularSoftmax`,
    :class:`~tabularpg.LinearSoftmax`) the objective is a linear least squares problem, solved
    by conjugate gradient from :math:`\theta_t` (the minimum-norm step); for
    :class:`~tabularpg.NeuralSoftmax` the logits are linearized at :math:`\theta_t`, so the
    step is one Gauss-Newton step of the regression, not its exact minimizer.

    Parameters
    ----------
    x : int ndarray of shape (n,)
    y : int ndarray of shape (n, 2m)
        Pairs ``(y[:, 0], y[:, 1])``, ``(y[:, 2], y[:, 3])``, ...

    Returns
    -------
    ndarray shaped like ``theta``
    """
    _check_policy(policy, problem)
    theta = np.real(policy.check_theta(theta))
    eta = check_float(eta, "eta")
    if eta <= 0:
        raise ValidationError(f"`eta` must be > 0; got {eta}")
    x, y = np.asarray(x), np.asarray(y)
    if y.ndim != 2 or x.shape != (y.shape[0],) or y.shape[1] % 2:
        raise ShapeError(f"`y` must have shape (n, 2m) with `x` of shape (n,); got {y.shape} and {x.shape}")
    R = problem.reward - problem.beta * (policy.log_probs(theta) - np.log(problem.pi_ref))
    xr = np.repeat(x, y.shape[1] // 2)
    y1, y2 = y[:, 0::2].ravel(), y[:, 1::2].ravel()
    return _rebel_solve(policy, theta, xr, y1, y2, R[xr, y1] - R[xr, y2], np.ones(xr.size), eta,
                        check_int(cg_iters, "cg_iters", minimum=1), check_float(tol, "tol", low=0.0))


def rebel_population_step(problem: KLProblem, policy: Policy, theta, *, eta: float, cg_iters: int = 500,
                          tol: float = 1e-13) -> np.ndarray:
    r"""REBEL's iteration on the exact population regression: every triple :math:`(x, y, y')`
    weighted by :math:`\mu(x)\pi_t(y|x)\pi_t(y'|x)`.

    For a tabular policy the minimizer is the mirror-descent step
    :math:`\pi_{t+1} \propto \pi_t\,e^{\eta R_t}`, i.e.
    :math:`\log\pi_{t+1} = (1 - \eta\beta)\log\pi_t + \eta\beta\log\pi_{ref} + \eta r + c(x)`, whose
    fixed point is :math:`\pi^*_\beta` (reached geometrically at rate :math:`|1 - \eta\beta|`).
    """
    _check_policy(policy, problem)
    theta = np.real(policy.check_theta(theta))
    eta = check_float(eta, "eta")
    if eta <= 0:
        raise ValidationError(f"`eta` must be > 0; got {eta}")
    X, Y = problem.shape
    logp = policy.log_probs(theta)
    pi = np.exp(logp)
    R = problem.reward - problem.beta * (logp - np.log(problem.pi_ref))
    x, y1, y2 = (a.ravel() for a in np.meshgrid(np.arange(X), np.arange(Y), np.arange(Y), indexing="ij"))
    w = problem.mu[x] * pi[x, y1] * pi[x, y2]
    return _rebel_solve(policy, theta, x, y1, y2, R[x, y1] - R[x, y2], w, eta,
                        check_int(cg_iters, "cg_iters", minimum=1), check_float(tol, "tol", low=0.0))
