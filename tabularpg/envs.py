r"""Built-in MDPs: Garnet, chain, gridworlds, cliff walking, bandits, a two-state MDP.

Every constructor returns a validated :class:`tabularpg.MDP`; the random ones take
``rng`` (a ``numpy.random.Generator`` or an int seed). :func:`make` builds one from a
spec string such as ``"garnet:S=50,A=4,b=5,seed=0"`` (the CLI's ``--mdp``).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from ._validation import (
    ArgumentTypeError,
    TabularPGError,
    ValidationError,
    as_float_array,
    as_rng,
    check_bool,
    check_float,
    check_int,
    check_readable_file,
    check_sequence,
)
from .mdp import MDP

__all__ = ["garnet", "chain", "gridworld", "sutton_barto_gridworld", "cliff_walking", "bandit",
           "two_state", "discount_counterexample", "ZOO", "ALIASES", "MissingDependencyError", "catalog", "make"]

_SPARSE_AUTO = 2000
#: Actions of the gridworlds, as in Gymnasium's CliffWalking: up, right, down, left.
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])


def _distinct_successors(rng, n_rows: int, n_states: int, b: int) -> np.ndarray:
    """``b`` distinct states per row, uniformly without replacement, shape (n_rows, b)."""
    if n_rows * n_states <= 4_000_000:
        keys = rng.random((n_rows, n_states))
        return np.sort(np.argpartition(keys, b - 1, axis=1)[:, :b], axis=1)
    cols = rng.integers(0, n_states, size=(n_rows, b))
    while True:  # redraw rows with a repeated successor (rare when b << S)
        srt = np.sort(cols, axis=1)
        dup = np.flatnonzero(np.any(srt[:, 1:] == srt[:, :-1], axis=1))
        if dup.size == 0:
            return srt
        cols[dup] = rng.integers(0, n_states, size=(dup.size, b))


def garnet(n_states: int, n_actions: int, branching: int, *, gamma: float = 0.9, rng=0,
           sparse=None, reward_scale: float = 1.0, horizon=None) -> MDP:
    r"""Garnet random MDP (Bhatnagar, Sutton, Ghavamzadeh and Lee 2009, "Natural
    actor-critic algorithms", Automatica 45(11)).

    For each ``(s, a)``: ``branching`` distinct successors drawn uniformly without
    replacement; their probabilities are the gaps between ``branching - 1`` sorted
    uniform cut points of [0, 1]. Mean rewards ``r(s, a) ~ N(0, reward_scale^2)``;
    ``mu`` uniform.

    Parameters
    ----------
    n_states, n_actions, branching : int
        ``1 <= branching <= n_states``.
    gamma : float
    rng : Generator or int
    sparse : bool or None
        CSR ``P`` of shape (S*A, S) if True; dense (S, A, S) if False; None: sparse when
        ``n_states > 2000``.
    reward_scale : float
    horizon : int or None

    Examples
    --------
    >>> m = garnet(10, 3, 2, rng=0)
    >>> bool(((m.P > 0).sum(axis=2) == 2).all())
    True
    """
    S = check_int(n_states, "n_states", minimum=1)
    A = check_int(n_actions, "n_actions", minimum=1)
    b = check_int(branching, "branching", minimum=1)
    if b > S:
        raise ValidationError(f"`branching` must be <= n_states = {S}; got {b}")
    reward_scale = check_float(reward_scale, "reward_scale", low=0.0)
    gamma = check_float(gamma, "gamma", low=0.0, high=1.0)
    horizon = check_int(horizon, "horizon", minimum=1, allow_none=True)
    sparse = None if sparse is None else check_bool(sparse, "sparse")
    rng = as_rng(rng)
    cols = _distinct_successors(rng, S * A, S, b)
    cuts = np.sort(rng.random((S * A, b - 1)), axis=1)
    probs = np.diff(np.concatenate([np.zeros((S * A, 1)), cuts, np.ones((S * A, 1))], axis=1), axis=1)
    R = rng.normal(scale=reward_scale, size=(S, A))
    use_sparse = S > _SPARSE_AUTO if sparse is None else bool(sparse)
    P = sp.csr_matrix((probs.ravel(), cols.ravel(), np.arange(0, S * A * b + 1, b)), shape=(S * A, S))
    if not use_sparse:
        P = P.toarray().reshape(S, A, S)
    return MDP(P, R, np.full(S, 1.0 / S), gamma=gamma, horizon=horizon)


def chain(n_states: int = 5, *, gamma: float = 0.9, slip: float = 0.2, small: float = 2.0,
          large: float = 10.0, horizon=None) -> MDP:
    r"""The n-chain of Strens (2000), "A Bayesian framework for reinforcement learning", ICML.

    Action 0 ("forward") moves from ``s`` to ``s + 1`` with reward 0, and at the last
    state stays there with reward ``large``; action 1 ("back") returns to state 0 with
    reward ``small``. With probability ``slip`` the other action is executed. Starts in
    state 0. A myopic policy keeps taking the small reward; the optimal one walks to the end.

    ``n_states`` is an int >= 2, ``slip`` in [0, 1], ``small`` and ``large`` finite reals,
    ``gamma`` in [0, 1], ``horizon`` an int >= 1 or None.
    """
    S = check_int(n_states, "n_states", minimum=2)
    slip = check_float(slip, "slip", low=0.0, high=1.0)
    small = check_float(small, "small")
    large = check_float(large, "large")
    P = np.zeros((S, 2, S))
    R = np.zeros((S, 2, S))
    for s in range(S):
        fwd = min(s + 1, S - 1)
        for a, p_fwd in ((0, 1 - slip), (1, slip)):
            P[s, a, fwd] += p_fwd
            P[s, a, 0] += 1 - p_fwd
        R[s, :, fwd] = large if s == S - 1 else 0.0
        R[s, :, 0] = small
    mu = np.zeros(S)
    mu[0] = 1.0
    return MDP(P, R, mu, gamma=gamma, horizon=horizon)


def gridworld(text_map, *, gamma: float = 0.9, step_reward: float = 0.0, goal_reward: float = 1.0,
              cliff_reward: float = -100.0, wall_reward=None, slip: float = 0.0, teleports=None,
              horizon=None) -> MDP:
    r"""A gridworld from a text map, one string per row.

    Cells: ``.`` free, ``#`` wall, ``S`` start (``mu`` is uniform over the ``S`` cells),
    ``G`` goal (terminal: entering it ends the episode with ``step_reward + goal_reward``),
    ``C`` cliff (entering it gives ``cliff_reward`` and sends the agent back to a start
    cell, as in Sutton & Barto's Example 6.6). Actions 0..3 = up, right, down, left;
    moving into a wall or off the grid leaves the agent in place (reward ``wall_reward``,
    default ``step_reward``). With probability ``slip`` a uniformly random action is
    executed instead. ``teleports`` maps a cell ``(row, col)`` to ``((row', col'), reward)``:
    every action taken in that cell moves to ``(row', col')`` with that reward (Sutton &
    Barto's A -> A' and B -> B'). States are the non-wall cells in row-major order.
    Rewards are finite reals, ``slip`` in [0, 1]; ``text_map`` is one string (rows
    separated by newlines) or a sequence of row strings.

    Examples
    --------
    >>> m = gridworld(["S.G"], gamma=1.0, step_reward=-1.0, goal_reward=0.0)
    >>> m.n_states, m.n_actions, m.terminal.tolist()
    (3, 4, [False, False, True])
    """
    if not isinstance(text_map, str):
        text_map = check_sequence(text_map, "text_map")
        if not all(isinstance(r, str) for r in text_map):
            raise ArgumentTypeError("`text_map` must be a string or a sequence of strings (one per row); "
                                    f"got items of types {sorted({type(r).__name__ for r in text_map})}")
    step_reward = check_float(step_reward, "step_reward")
    goal_reward = check_float(goal_reward, "goal_reward")
    cliff_reward = check_float(cliff_reward, "cliff_reward")
    wall_reward = check_float(wall_reward, "wall_reward", allow_none=True)
    if teleports is not None and not isinstance(teleports, dict):
        raise ArgumentTypeError(f"`teleports` must be a dict {{(row, col): ((row', col'), reward)}}; "
                                f"got {type(teleports).__name__}")
    rows = [list(r) for r in (text_map.strip().splitlines() if isinstance(text_map, str) else text_map)]
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise ValidationError("`text_map` must be a non-empty rectangle of characters")
    allowed = set(".#SGC")
    bad = {c for r in rows for c in r} - allowed
    if bad:
        raise ValidationError(f"`text_map` has unknown cell characters {sorted(bad)}; allowed {sorted(allowed)}")
    grid = np.array(rows)
    cells = [tuple(x) for x in np.argwhere(grid != "#")]
    index = {c: i for i, c in enumerate(cells)}
    starts = [index[c] for c in cells if grid[c] == "S"]
    if not starts:
        raise ValidationError("`text_map` needs at least one start cell 'S'")
    slip = check_float(slip, "slip", low=0.0, high=1.0)
    wall_reward = step_reward if wall_reward is None else wall_reward
    teleports = {} if teleports is None else dict(teleports)
    for src, target in teleports.items():
        try:
            dst, rew = target
            src, dst = tuple(int(x) for x in src), tuple(int(x) for x in dst)
        except (TypeError, ValueError):
            raise ArgumentTypeError(f"`teleports` must map (row, col) to ((row', col'), reward); "
                                    f"got {src!r}: {target!r}") from None
        try:
            check_float(rew, "reward")
        except (ValidationError, ArgumentTypeError) as exc:
            raise type(exc)(f"`teleports` entry {src}: {exc}") from None
        for name, cell in (("source", src), ("target", dst)):
            if tuple(cell) not in index:
                raise ValidationError(f"`teleports` {name} {tuple(cell)} must be a non-wall cell of the map")
    S, A = len(cells), 4
    P = np.zeros((S, A, S))
    R = np.zeros((S, A))
    start_mu = np.zeros(S)
    start_mu[starts] = 1.0 / len(starts)
    for c, s in index.items():
        for move in range(A):
            nr, nc = c[0] + MOVES[move][0], c[1] + MOVES[move][1]
            inside = 0 <= nr < grid.shape[0] and 0 <= nc < grid.shape[1] and grid[nr, nc] != "#"
            if c in teleports:
                (tr, tc), rew = teleports[c]
                dest = {index[(tr, tc)]: 1.0}
            elif not inside:
                dest, rew = {s: 1.0}, wall_reward
            elif grid[nr, nc] == "C":
                dest, rew = {st: p for st, p in zip(starts, start_mu[starts])}, cliff_reward
            else:
                t = index[(nr, nc)]
                dest, rew = {t: 1.0}, step_reward + (goal_reward if grid[nr, nc] == "G" else 0.0)
            for a in range(A):
                w = (1 - slip if a == move else 0.0) + slip / A
                R[s, a] += w * rew
                for t, p in dest.items():
                    P[s, a, t] += w * p
    terminal = np.array([grid[c] == "G" for c in cells])
    return MDP(P, R, start_mu, gamma=gamma, horizon=horizon, terminal=terminal if terminal.any() else None)


def sutton_barto_gridworld(*, gamma: float = 0.9) -> MDP:
    r"""The 5x5 gridworld of Sutton & Barto (2018), *Reinforcement Learning: An
    Introduction*, 2nd ed., Example 3.5 (Figure 3.2).

    From cell A = (0, 1) every action moves to A' = (4, 1) with reward +10; from
    B = (0, 3) every action moves to B' = (2, 3) with reward +5; actions that would
    leave the grid keep the agent in place with reward -1; all other moves give 0.
    States are cells in row-major order (``s = 5 * row + col``); actions up, right,
    down, left; ``mu`` uniform. Built by :func:`gridworld` with two teleport cells.
    Published values: ``V(A) = 8.8`` under the equiprobable
    policy (Figure 3.2) and ``V*(A) = 24.4`` (Example 3.8, Figure 3.5), gamma = 0.9.
    """
    return gridworld(["SSSSS"] * 5, gamma=gamma, step_reward=0.0, wall_reward=-1.0,
                     teleports={(0, 1): ((4, 1), 10.0), (0, 3): ((2, 3), 5.0)})


CLIFF_MAP = """
............
............
............
SCCCCCCCCCCG
"""


def cliff_walking(*, gamma: float = 1.0, horizon=None) -> MDP:
    r"""Cliff walking, Sutton & Barto (2018), Example 6.6: a 4x12 grid, reward -1 per
    step, -100 and back to the start for stepping into the cliff, the goal terminal.
    The optimal return (``gamma = 1``) is -13. Same layout and actions as Gymnasium's
    ``CliffWalking-v1`` (cliff cells are states that are never entered).
    """
    return gridworld(CLIFF_MAP, gamma=gamma, step_reward=-1.0, goal_reward=0.0, cliff_reward=-100.0,
                     horizon=horizon)


def bandit(means, *, gamma: float = 1.0) -> MDP:
    r"""A multi-armed bandit as a one-state MDP with horizon 1: ``J(pi) = sum_a pi(a) r(a)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tabularpg import exact
    >>> m = bandit([1.0, 0.9, 0.1])
    >>> float(exact.objective(m, np.array([[0.5, 0.5, 0.0]])))
    0.95
    """
    r = as_float_array(means, "means", ndim=1, expected="(one reward per arm)")
    if r.size == 0:
        raise ValidationError("`means` must have at least one arm")
    return MDP(np.ones((1, r.size, 1)), r[None, :], np.ones(1), gamma=gamma, horizon=1)


def two_state(*, gamma: float = 0.9) -> MDP:
    r"""A two-state, two-action MDP small enough to solve by hand.

    Action 0 stays, action 1 switches state (deterministically); rewards
    ``r(0, stay) = 1``, ``r(1, stay) = 2``, switching gives 0; start in state 0.

    Under the uniform policy ``P_pi = 1/2`` everywhere and ``r_pi = (1/2, 1)``, so the
    mean value ``m = (V_0 + V_1)/2`` solves ``m = 3/4 + gamma m`` and
    ``V = r_pi + gamma m``: with gamma = 0.9, ``m = 7.5`` and ``V = (7.25, 7.75)``.
    The optimal policy stays in 1 and switches from 0: ``V*(1) = 2/(1-gamma) = 20``,
    ``V*(0) = gamma V*(1) = 18``.

    Examples
    --------
    >>> import numpy as np
    >>> from tabularpg import exact
    >>> V, Q = exact.evaluate(two_state(), np.full((2, 2), 0.5))
    >>> np.round(V, 12).tolist()
    [7.25, 7.75]
    """
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[1, 0, 1] = 1.0
    P[0, 1, 1] = P[1, 1, 0] = 1.0
    R = np.array([[1.0, 0.0], [2.0, 0.0]])
    return MDP(P, R, np.array([1.0, 0.0]), gamma=gamma)


def discount_counterexample():
    r"""An MDP and a linear policy where dropping :math:`\gamma^t` reverses the gradient.

    Returns ``(mdp, policy, theta)``: Garnet(3, 2, 2) (``rng=310``, gamma = 0.5, horizon 6)
    with one shared feature per (s, a) (``N(0, 1)``, seed 310), at ``theta = 0``. The exact
    policy gradient is positive while the expected update of ``reward_to_go_undiscounted``
    (Nota and Thomas 2020) is negative: ascending the undiscounted update lowers ``J``.
    Found by a search over seeds for a negative inner product (see the tests).
    """
    from .policies import LinearSoftmax

    mdp = garnet(3, 2, 2, rng=310, gamma=0.5, horizon=6)
    phi = np.random.default_rng(310).normal(size=(3, 2, 1))
    return mdp, LinearSoftmax(phi), np.zeros(1)


def _f(x):
    return float(x)


def _i(x):
    return int(x)


def _b(x):
    if x.lower() in ("1", "true", "yes"):
        return True
    if x.lower() in ("0", "false", "no"):
        return False
    raise ValueError(f"expected a boolean, got {x!r}")


def _means(x):
    return [float(v) for v in x.split(";")]


#: name -> (constructor, {spec key: (keyword, parser)}, default keyword arguments)
_SPECS: dict[str, tuple[Callable[..., MDP], dict[str, tuple[str, Callable[[str], Any]]], dict[str, Any]]] = {
    "garnet": (lambda S, A, b, **kw: garnet(S, A, b, **kw),
               {"S": ("S", _i), "A": ("A", _i), "b": ("b", _i), "seed": ("rng", _i), "gamma": ("gamma", _f),
                "sparse": ("sparse", _b), "horizon": ("horizon", _i)},
               {"S": 20, "A": 4, "b": 3}),
    "chain": (lambda S, **kw: chain(S, **kw),
              {"S": ("S", _i), "gamma": ("gamma", _f), "slip": ("slip", _f), "horizon": ("horizon", _i)},
              {"S": 5}),
    "sutton_barto_gridworld": (sutton_barto_gridworld, {"gamma": ("gamma", _f)}, {}),
    "cliff_walking": (cliff_walking, {"gamma": ("gamma", _f), "horizon": ("horizon", _i)}, {}),
    "bandit": (bandit, {"means": ("means", _means), "gamma": ("gamma", _f)}, {"means": [1.0, 0.9, 0.1]}),
    "two_state": (two_state, {"gamma": ("gamma", _f)}, {}),
}

#: Older spec names, still accepted: alias -> name (``gridworld`` was the CLI's name of
#: Sutton & Barto's 5x5 gridworld; :func:`gridworld` itself builds a gridworld from a map).
ALIASES = {"gridworld": "sutton_barto_gridworld"}

#: name -> zero-argument factory of a small default instance (``ZOO["garnet"]()``).
ZOO = {name: (lambda name=name: make(name)) for name in _SPECS}


def catalog() -> dict[str, dict[str, Any]]:
    """The built-in spec names with their option keys and defaults.

    Returns
    -------
    dict
        ``name -> {"keys": [...], "defaults": {...}, "summary": first docstring line,
        "aliases": [...]}`` for every name :func:`make` accepts (``tabularpg solve --mdp
        help`` prints it).

    Examples
    --------
    >>> catalog()["garnet"]["keys"]
    ['S', 'A', 'b', 'seed', 'gamma', 'sparse', 'horizon']
    >>> catalog()["sutton_barto_gridworld"]["aliases"]
    ['gridworld']
    """
    funcs = {"garnet": garnet, "chain": chain, "sutton_barto_gridworld": sutton_barto_gridworld,
             "cliff_walking": cliff_walking, "bandit": bandit, "two_state": two_state}
    out = {}
    for name, (_, keys, defaults) in _SPECS.items():
        doc = (funcs[name].__doc__ or "").strip().splitlines()
        out[name] = {"keys": list(keys), "defaults": dict(defaults),
                     "summary": doc[0].rstrip(".") if doc else "",
                     "aliases": [a for a, n in ALIASES.items() if n == name]}
    return out


def _literal(text: str) -> Any:
    """``True``/``False``/``None``, an int, a float, else the string itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text.strip()


def _make_gym(spec: str, gamma: float | None, horizon: Any) -> MDP:
    env_id, _, rest = spec[4:].partition(":")
    kwargs = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValidationError(f"`spec`: bad env option {item!r} in {spec!r}; expected key=value "
                                  "(e.g. gym:FrozenLake-v1:is_slippery=False,map_name=8x8)")
        kwargs[key.strip()] = _literal(value)
    try:
        import gymnasium
    except ImportError as exc:
        raise MissingDependencyError("gymnasium", "gym", f"the MDP spec {spec!r}") from exc
    from .interop import from_gymnasium

    try:
        env = gymnasium.make(env_id, **kwargs)
    except Exception as exc:  # gymnasium raises several error types for bad ids and kwargs
        raise ValidationError(f"`spec`: Gymnasium cannot make {env_id!r} with {kwargs}: {exc}") from None
    # gamma = 1 and the env's TimeLimit as horizon: J is Gymnasium's expected episode return
    return from_gymnasium(env, gamma=1.0 if gamma is None else gamma,
                          horizon="auto" if horizon is _UNSET else horizon)


class MissingDependencyError(TabularPGError, ImportError):
    """An optional dependency is not installed; the message gives the ``pip install`` line."""

    def __init__(self, module: str, extra: str, what: str):
        self.module, self.extra = module, extra
        super().__init__(f"{what} needs {module}, which is not installed; "
                         f"run: pip install 'tabularpg[{extra}]'")


_UNSET: Any = object()


def make(spec: str, *, gamma: float | None = None, horizon: Any = _UNSET) -> MDP:
    """Build an MDP from a spec string: the ``--mdp`` argument of the command line.

    Three kinds of spec:

    * a built-in, ``"name"`` or ``"name:key=value,key=value"``. Names (each the function
      of this module that builds it) and keys: ``garnet`` (S, A, b, seed, gamma, sparse,
      horizon), ``chain`` (S, gamma, slip, horizon), ``sutton_barto_gridworld`` (gamma;
      alias ``gridworld``), ``cliff_walking`` (gamma, horizon), ``bandit`` (means as
      ``1;0.9;0.1``, gamma), ``two_state`` (gamma). :func:`catalog` lists them.
    * ``"gym:ID"`` or ``"gym:ID:key=value,..."``: the exact model of a Gymnasium toy-text
      environment made with those keyword arguments (``True``/``False``/numbers are
      parsed, anything else stays a string), by
      :func:`tabularpg.interop.from_gymnasium` with ``gamma = 1`` and the env's
      ``TimeLimit`` as horizon unless overridden, so ``J`` is Gymnasium's expected
      episode return. Needs ``pip install 'tabularpg[gym]'``.
    * a path ending in ``.npz``: :meth:`tabularpg.MDP.from_npz`.

    Parameters
    ----------
    spec : str
    gamma : float, optional
        Replaces the discount of the MDP.
    horizon : int or None, optional
        Replaces the horizon (None: infinite). Not given: the spec's.

    Raises
    ------
    ValidationError
        Unknown name, key or value; Gymnasium cannot make the env.
    MissingDependencyError
        ``gym:`` without Gymnasium installed (an ``ImportError``).

    Examples
    --------
    >>> make("garnet:S=6,A=2,b=2,seed=3").n_states
    6
    >>> make("gridworld").n_states == make("sutton_barto_gridworld").n_states == 25
    True
    >>> m = make("gym:FrozenLake-v1:is_slippery=False,map_name=8x8")
    >>> m.n_states, m.gamma, m.horizon
    (64, 1.0, 100)
    """
    if not isinstance(spec, str):
        raise ArgumentTypeError(f"`spec` must be a string; got {type(spec).__name__}")
    if spec.startswith("gym:"):
        return _make_gym(spec, gamma, horizon)
    if spec.endswith(".npz"):
        mdp = MDP.from_npz(check_readable_file(spec, "spec"))   # a missing file is named as `spec`
    else:
        mdp = _make_builtin(spec)
    changes: dict[str, Any] = {}
    if gamma is not None:
        changes["gamma"] = gamma
    if horizon is not _UNSET:
        changes["horizon"] = horizon
    return mdp.replace(**changes) if changes else mdp


def _make_builtin(spec: str) -> MDP:
    name, _, rest = spec.partition(":")
    name = ALIASES.get(name.strip(), name.strip())
    if name not in _SPECS:
        raise ValidationError(f"`spec`: unknown MDP {name!r}; valid names: {', '.join(sorted(_SPECS))} "
                              f"(aliases: {', '.join(f'{a} = {n}' for a, n in ALIASES.items())}; "
                              "e.g. garnet:S=50,A=4,b=5,seed=0, gym:FrozenLake-v1 or file.npz)")
    ctor, keys, defaults = _SPECS[name]
    kwargs = dict(defaults)
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in keys:
            raise ValidationError(f"`spec`: bad option {item!r} for {name}; valid keys: {', '.join(keys)}")
        kw, parse = keys[key]
        try:
            kwargs[kw] = parse(value)
        except ValueError as exc:
            raise ValidationError(f"`spec`: bad value for {name} option {key!r}: {value!r} ({exc})") from None
    return ctor(**kwargs)
