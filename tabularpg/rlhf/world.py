r"""The arena's world and its exact metrics: prompts are states, responses are actions.

A world is a horizon-1 MDP: a prompt :math:`x \sim \mu` (the state), one response
:math:`y` (the action), a true reward :math:`r(x, y)`, optionally a length :math:`|y|` and
features :math:`\phi(x, y)`. Preferences follow Bradley and Terry (1952):

.. math::
    P(y \succ y' \mid x) = \sigma\big(r(x, y) - r(x, y')\big).

Exact metrics of a policy :math:`\pi` (tables of shape (X, Y)):

.. math::
    \mathrm{win}(\pi, \pi') &= \sum_x \mu(x) \sum_{y, y'} \pi(y|x)\,\pi'(y'|x)\,\sigma(r(x,y) - r(x,y')),\\
    \mathrm{KL}(\pi\,\|\,\pi_{ref}) &= \sum_x \mu(x) \sum_y \pi(y|x) \log\frac{\pi(y|x)}{\pi_{ref}(y|x)},\\
    J_\beta(\pi) &= \sum_x\mu(x)\sum_y \pi(y|x) r(x,y) - \beta\,\mathrm{KL}(\pi\,\|\,\pi_{ref}),
    \qquad \pi^*_\beta(y|x) \propto \pi_{ref}(y|x)\, e^{r(x,y)/\beta}.

:class:`KLProblem` is the KL-regularized problem with any reward (the true one or a
learned reward model). It is an entropy-regularized MDP in disguise:
:math:`J_\beta(\pi) = E_\pi[r + \beta\log\pi_{ref}] + \beta\mathcal H(\pi)`, so its exact
gradient is :func:`tabularpg.objectives.entropy_policy_gradient` on the MDP with reward
:math:`r + \beta\log\pi_{ref}` and temperature :math:`\beta`, and its optimum is that
MDP's soft-optimal policy (Rafailov et al. 2023, eq. 4; Ziebart 2010).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import objectives, optim
from .._validation import (
    ArgumentTypeError,
    ShapeError,
    ValidationError,
    as_float_array,
    as_rng,
    check_float,
    check_int,
    check_prob_table,
)
from ..mdp import MDP
from ..policies import softmax

__all__ = [
    "KLProblem",
    "Metrics",
    "World",
    "check_reference",
    "demonstrator",
    "evaluate",
    "kl_to_reference",
    "length_bias_world",
    "make_world",
    "random_world",
    "total_variation",
    "win_rate",
]


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _positive(value, name):
    value = check_float(value, name)
    if value <= 0:
        raise ValidationError(f"`{name}` must be > 0; got {value}")
    return value


def _bandit_mdp(reward, mu) -> MDP:
    """Horizon-1 MDP: states = prompts (X,), actions = responses, ``reward`` (X, Y)."""
    X, Y = reward.shape
    P = np.zeros((X, Y, X))
    P[:, :, 0] = 1.0  # irrelevant: every episode ends after one response
    return MDP(P, reward, mu, gamma=1.0, horizon=1)


def _check_mu(mu, n_prompts: int) -> np.ndarray:
    """The prompt distribution: a probability vector of shape (X,)."""
    mu = as_float_array(mu, "mu", shape=(n_prompts,))
    check_prob_table(mu[None, :], 1, n_prompts, name="mu")
    return mu


def check_reference(pi_ref, shape, name: str = "pi_ref") -> np.ndarray:
    """A probability table of ``shape`` (X, Y) with full support (every entry > 0)."""
    pi_ref = check_prob_table(pi_ref, shape[0], shape[1], name=name)
    if np.any(pi_ref <= 0):
        x, y = np.argwhere(pi_ref <= 0)[0]
        raise ValidationError(f"`{name}` must have full support (every entry > 0); entry (x={x}, y={y}) "
                              f"is {pi_ref[x, y]:.3g}")
    return np.asarray(pi_ref, dtype=float)


@dataclass(frozen=True, eq=False)
class World:
    r"""Prompts x responses with a true reward.

    Attributes
    ----------
    mu : ndarray of shape (X,)
        Prompt distribution.
    reward : ndarray of shape (X, Y)
        True reward :math:`r(x, y)` (the judge's Bradley-Terry scores).
    length : int ndarray of shape (X, Y)
        Response lengths :math:`|y| \ge 1` (only GRPO's per-token normalization uses them).
    features : ndarray of shape (X, Y, d)
        Features :math:`\phi(x, y)` for linear policies and linear reward models.
    name : str
    """

    mu: np.ndarray
    reward: np.ndarray
    length: np.ndarray
    features: np.ndarray
    name: str = "world"
    _mdp: MDP = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        reward = as_float_array(self.reward, "reward", ndim=2)
        X, Y = reward.shape
        if X < 1 or Y < 2:
            raise ShapeError(f"`reward` must have shape (X, Y) with X >= 1, Y >= 2; got {reward.shape}")
        mu = _check_mu(self.mu, X)
        length = np.asarray(self.length)
        if length.shape != (X, Y):
            raise ShapeError(f"`length` must have shape {(X, Y)}; got {length.shape}")
        if not np.issubdtype(length.dtype, np.integer) or length.min() < 1:
            raise ValidationError(f"`length` must hold integers >= 1; got dtype {length.dtype}, min {length.min()}")
        features = as_float_array(self.features, "features", ndim=3)
        if features.shape[:2] != (X, Y) or features.shape[2] < 1:
            raise ShapeError(f"`features` must have shape ({X}, {Y}, d) with d >= 1; got {features.shape}")
        for name, arr in (("mu", mu), ("reward", reward), ("length", length), ("features", features)):
            arr = np.array(arr, copy=True)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "_mdp", _bandit_mdp(self.reward, self.mu))

    @property
    def n_prompts(self) -> int:
        return self.reward.shape[0]

    @property
    def n_responses(self) -> int:
        return self.reward.shape[1]

    @property
    def shape(self) -> tuple:
        return self.reward.shape

    @property
    def mdp(self) -> MDP:
        """The horizon-1 MDP (states = prompts, actions = responses, reward = true reward)."""
        return self._mdp

    def preference(self) -> np.ndarray:
        r"""Bradley-Terry table :math:`\sigma(r(x,y) - r(x,y'))`, shape (X, Y, Y)."""
        return _sigmoid(self.reward[:, :, None] - self.reward[:, None, :])


def _standardize(a):
    sd = a.std()
    return (a - a.mean()) / (sd if sd > 0 else 1.0)


def random_world(n_prompts: int = 50, n_responses: int = 8, *, n_features: int = 8, scale: float = 1.0,
                 linear_share: float = 0.7, max_length: int = 20, rng=0) -> World:
    r"""A random world: :math:`r = s\,(\rho\,\phi^\top w / \|w\| + \sqrt{1-\rho^2}\,\epsilon)`.

    Parameters
    ----------
    n_prompts, n_responses : int
        ``X >= 1`` prompts, ``Y >= 2`` responses per prompt.
    n_features : int
        ``d``; features :math:`\phi(x,y) \sim N(0, I_d)`.
    scale : float
        ``s`` > 0, the reward scale (Bradley-Terry units).
    linear_share : float in [0, 1]
        :math:`\rho`, how much of the reward a linear model in :math:`\phi` can explain.
    max_length : int
        Lengths are uniform on ``1..max_length`` and independent of the reward.
    rng : Generator or int

    Returns
    -------
    World
        :math:`\mu` ~ Dirichlet(5, ..., 5), :math:`\epsilon \sim N(0, 1)` i.i.d.
    """
    X = check_int(n_prompts, "n_prompts", minimum=1)
    Y = check_int(n_responses, "n_responses", minimum=2)
    d = check_int(n_features, "n_features", minimum=1)
    scale = _positive(scale, "scale")
    rho = check_float(linear_share, "linear_share", low=0.0, high=1.0)
    max_length = check_int(max_length, "max_length", minimum=1)
    rng = as_rng(rng)
    mu = rng.dirichlet(np.full(X, 5.0))
    phi = rng.normal(size=(X, Y, d))
    w = rng.normal(size=d)
    r = scale * (rho * phi @ (w / np.linalg.norm(w)) + np.sqrt(1 - rho * rho) * rng.normal(size=(X, Y)))
    length = rng.integers(1, max_length + 1, size=(X, Y))
    return World(mu=mu, reward=r, length=length, features=phi, name="random")


def length_bias_world(n_prompts: int = 50, n_responses: int = 8, *, bias: float = 0.5, n_features: int = 7,
                      max_length: int = 20, rng=0) -> World:
    r"""A world where longer responses are better on average.

    :math:`r(x, y) = q(x, y) + b\,\tilde\ell(x, y)` with quality :math:`q \sim N(0, 1)` and
    :math:`\tilde\ell` the standardized length (lengths uniform on ``1..max_length``).
    Features: ``n_features`` noisy views of the quality and :math:`\tilde\ell` as the last
    column (so a linear reward model can learn the length bias).

    Parameters
    ----------
    bias : float
        ``b`` >= 0, reward per standard deviation of length.
    """
    X = check_int(n_prompts, "n_prompts", minimum=1)
    Y = check_int(n_responses, "n_responses", minimum=2)
    d = check_int(n_features, "n_features", minimum=1)
    bias = check_float(bias, "bias", low=0.0)
    max_length = check_int(max_length, "max_length", minimum=2)
    rng = as_rng(rng)
    mu = rng.dirichlet(np.full(X, 5.0))
    q = rng.normal(size=(X, Y))
    length = rng.integers(1, max_length + 1, size=(X, Y))
    ell = _standardize(length.astype(float))
    noisy = q[:, :, None] + rng.normal(size=(X, Y, d))
    phi = np.concatenate([noisy / np.sqrt(2.0), ell[:, :, None]], axis=2)
    return World(mu=mu, reward=q + bias * ell, length=length, features=phi, name="length_bias")


_WORLDS: dict[str, tuple[Callable[..., World], dict]] = {
    "random": (random_world, {"X": ("n_prompts", int), "Y": ("n_responses", int), "d": ("n_features", int),
                              "scale": ("scale", float), "rho": ("linear_share", float),
                              "L": ("max_length", int), "seed": ("rng", int)}),
    "length_bias": (length_bias_world, {"X": ("n_prompts", int), "Y": ("n_responses", int),
                                        "d": ("n_features", int), "bias": ("bias", float),
                                        "L": ("max_length", int), "seed": ("rng", int)}),
}


def make_world(spec: str) -> World:
    """Build a world from a spec ``name:key=value,...``.

    ``random:X=50,Y=8,d=8,scale=1,rho=0.7,L=20,seed=0`` or
    ``length_bias:X=50,Y=8,d=7,bias=0.5,L=20,seed=0`` (every key optional).

    Examples
    --------
    >>> make_world("random:X=3,Y=4,seed=1").shape
    (3, 4)
    """
    if not isinstance(spec, str):
        raise ArgumentTypeError(f"`spec` must be a string; got {type(spec).__name__}")
    name, _, rest = spec.partition(":")
    if name not in _WORLDS:
        raise ValidationError(f"`spec`: unknown world {name!r}; valid names: {', '.join(sorted(_WORLDS))}")
    ctor, keys = _WORLDS[name]
    items = _parse_items(rest, {key: conv for key, (_, conv) in keys.items()}, "spec", f"world {name!r}", "key")
    return ctor(**{keys[key][0]: value for key, value in items.items()})


def _parse_items(rest: str, converters: dict, argument: str, what: str, noun: str) -> dict:
    """The ``key=value,...`` tail of a spec: ``{key: converters[key](value)}``; an unknown
    key or an unconvertible value raises a ValidationError naming ``argument``."""
    out = {}
    for item in filter(None, (t.strip() for t in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in converters:
            raise ValidationError(f"`{argument}`: bad {noun} {item!r} for {what}; {noun}s: "
                                  f"{', '.join(converters) or 'none'}")
        conv = converters[key]
        try:
            out[key] = conv(value)
        except ValueError as exc:
            raise ValidationError(f"`{argument}`: {key}={value!r} is not a valid {conv.__name__}") from exc
    return out


# ----------------------------------------------------------------------------- metrics
def _table(pi, shape, name):
    return np.asarray(check_prob_table(pi, shape[0], shape[1], name=name).real, dtype=float)


def win_rate(world: World, pi, opponent) -> float:
    r"""Exact win rate :math:`\sum_x\mu(x)\sum_{y,y'}\pi(y|x)\pi'(y'|x)\sigma(r(x,y)-r(x,y'))`.

    Parameters
    ----------
    world : World
    pi, opponent : ndarray of shape (X, Y)

    Examples
    --------
    Against itself every policy wins half of the time:

    >>> w = random_world(3, 4, rng=0)
    >>> pi = np.full((3, 4), 0.25)
    >>> round(win_rate(w, pi, pi), 12)
    0.5
    """
    _check_world(world)
    pi = _table(pi, world.shape, "pi")
    opponent = _table(opponent, world.shape, "opponent")
    return float(np.einsum("x,xy,xyz,xz->", world.mu, pi, world.preference(), opponent))


def _mu_pair(mu, pi, other, other_name):
    pi = np.asarray(pi, dtype=float)
    if pi.ndim != 2:
        raise ShapeError(f"`pi` must have shape (X, Y); got {pi.shape}")
    pi = _table(pi, pi.shape, "pi")
    other = _table(other, pi.shape, other_name)
    mu = _check_mu(mu, pi.shape[0])
    return mu, pi, other


def kl_to_reference(mu, pi, pi_ref) -> float:
    r""":math:`\sum_x\mu(x)\,KL(\pi(\cdot|x)\,\|\,\pi_{ref}(\cdot|x))` in nats; ``mu`` (X,),
    ``pi``, ``pi_ref`` (X, Y). Refuses a ``pi_ref`` with zeros where ``pi`` has mass (infinite KL)."""
    mu, pi, pi_ref = _mu_pair(mu, pi, pi_ref, "pi_ref")
    bad = (pi > 0) & (pi_ref <= 0) & (mu[:, None] > 0)
    if np.any(bad):
        x, y = np.argwhere(bad)[0]
        raise ValidationError(f"`pi_ref` entry (x={x}, y={y}) is 0 where `pi` has mass {pi[x, y]:.3g}: "
                              "the KL is infinite")
    logr = np.log(np.where(pi > 0, pi, 1.0)) - np.log(np.where(pi > 0, pi_ref, 1.0))
    return float(mu @ np.sum(pi * logr, axis=1))


def total_variation(mu, pi, other) -> float:
    r""":math:`\sum_x\mu(x)\,\tfrac12\sum_y|\pi(y|x) - \pi'(y|x)|`; ``mu`` (X,), ``pi``, ``other`` (X, Y)."""
    mu, pi, other = _mu_pair(mu, pi, other, "other")
    return float(mu @ (0.5 * np.abs(pi - other).sum(axis=1)))


def _check_world(world):
    if not isinstance(world, World):
        raise ArgumentTypeError(f"`world` must be a World; got {type(world).__name__}")


@dataclass(frozen=True, eq=False)
class KLProblem:
    r"""Maximize :math:`J_\beta(\pi) = E_{x\sim\mu, y\sim\pi}[r(x,y)] - \beta\,KL(\pi\|\pi_{ref})`.

    Attributes
    ----------
    mu : ndarray of shape (X,)
    reward : ndarray of shape (X, Y)
        The reward being optimized (a reward model's table, or the true reward).
    pi_ref : ndarray of shape (X, Y)
        Reference policy with full support.
    beta : float
        KL coefficient, > 0.
    length : int ndarray of shape (X, Y) or None
        Response lengths (GRPO's per-token normalization); None means all 1.
    """

    mu: np.ndarray
    reward: np.ndarray
    pi_ref: np.ndarray
    beta: float
    length: np.ndarray | None = None
    _mdp: MDP = field(init=False, repr=False, compare=False)
    _soft: MDP = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        reward = as_float_array(self.reward, "reward", ndim=2)
        X, Y = reward.shape
        mu = _check_mu(self.mu, X)
        pi_ref = check_reference(self.pi_ref, (X, Y))
        beta = _positive(self.beta, "beta")
        length = None
        if self.length is not None:
            length = np.asarray(self.length)
            if length.shape != (X, Y):
                raise ShapeError(f"`length` must have the shape of `reward` {(X, Y)}; got {length.shape}")
            if length.min() < 1:
                raise ValidationError(f"`length` entries must be >= 1; got min {length.min()}")
        for name, arr in (("mu", mu), ("reward", reward), ("pi_ref", pi_ref), ("length", length)):
            if arr is not None:   # read-only copies, as in World: the problem cannot change under a run
                arr = np.array(arr, copy=True)
                arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "_mdp", _bandit_mdp(reward, mu))
        object.__setattr__(self, "_soft", _bandit_mdp(reward + beta * np.log(pi_ref), mu))

    @property
    def shape(self) -> tuple:
        return self.reward.shape

    @property
    def mdp(self) -> MDP:
        """Horizon-1 MDP whose reward is :attr:`reward` (what the sampled algorithms see)."""
        return self._mdp

    @property
    def soft_mdp(self) -> MDP:
        r"""Horizon-1 MDP with reward :math:`r + \beta\log\pi_{ref}`: its entropy-regularized
        objective at temperature :math:`\beta` is :math:`J_\beta`."""
        return self._soft

    def optimum(self) -> np.ndarray:
        r""":math:`\pi^*_\beta \propto \pi_{ref} e^{r/\beta}`, shape (X, Y)
        (:func:`tabularpg.optim.dpo_optimal_policy`)."""
        return optim.dpo_optimal_policy(self.pi_ref, self.reward, beta=self.beta)

    def objective(self, pi) -> float:
        r""":math:`J_\beta(\pi)` via :func:`tabularpg.objectives.entropy_objective` of :attr:`soft_mdp`."""
        pi = _table(pi, self.shape, "pi")
        return float(np.real(objectives.entropy_objective(self._soft, pi, self.beta)))

    def gradient(self, policy, theta) -> np.ndarray:
        r"""Exact :math:`\nabla_\theta J_\beta(\pi_\theta)`, shaped like ``theta``:
        :math:`\sum_{x,y}\mu\pi(r - \beta\log\frac{\pi}{\pi_{ref}})\nabla\log\pi`
        (:func:`tabularpg.objectives.entropy_policy_gradient` of :attr:`soft_mdp`)."""
        return np.real(objectives.entropy_policy_gradient(self._soft, policy, theta, self.beta))

    def log_ratio(self, pi) -> np.ndarray:
        r""":math:`\log\pi - \log\pi_{ref}`, shape (X, Y)."""
        return np.log(pi) - np.log(self.pi_ref)


@dataclass(frozen=True)
class Metrics:
    """Exact metrics of one policy: win rates against ``pi_ref`` and an optional second
    opponent, true reward, reward-model reward, KL to ``pi_ref``, and the total-variation
    distance to the KL-regularized optimum of the optimized reward."""

    win_rate: float
    win_rate_opponent: float
    reward: float
    rm_reward: float
    kl: float
    distance: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def evaluate(world: World, problem: KLProblem, pi, *, opponent=None, optimum=None) -> Metrics:
    r"""Exact :class:`Metrics` of ``pi`` (X, Y).

    ``problem`` carries the optimized reward, :math:`\pi_{ref}` and :math:`\beta`;
    ``opponent`` (X, Y) is a second policy to win against (NaN when None); ``optimum``
    may pass a precomputed ``problem.optimum()``.
    """
    _check_world(world)
    if not isinstance(problem, KLProblem):
        raise ArgumentTypeError(f"`problem` must be a KLProblem; got {type(problem).__name__}")
    pi = _table(pi, world.shape, "pi")
    if problem.shape != world.shape:
        raise ShapeError(f"`problem` must have the world's shape {world.shape}; got {problem.shape}")
    opt = problem.optimum() if optimum is None else optimum
    return Metrics(
        win_rate=win_rate(world, pi, problem.pi_ref),
        win_rate_opponent=win_rate(world, pi, opponent) if opponent is not None else float("nan"),
        reward=float(world.mu @ np.sum(pi * world.reward, axis=1)),
        rm_reward=float(world.mu @ np.sum(pi * problem.reward, axis=1)),
        kl=kl_to_reference(world.mu, pi, problem.pi_ref),
        distance=total_variation(world.mu, pi, opt),
    )


def demonstrator(world: World, temperature: float) -> np.ndarray:
    r"""The demonstrator (the "human" writer) :math:`\pi_{demo} = \mathrm{softmax}(r/T)`, (X, Y)."""
    _check_world(world)
    return softmax(world.reward / _positive(temperature, "temperature"))
