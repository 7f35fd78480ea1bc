r"""Gymnasium toy-text environments to and from :class:`tabularpg.MDP`.

:func:`from_gymnasium` reads the exact model of a toy-text environment:
``env.unwrapped.P[s][a]`` is a list of ``(prob, next_state, reward, terminated)`` and
``env.unwrapped.initial_state_distrib`` the start distribution. Duplicate successors are
summed (FrozenLake's slippery moves list the same next state several times). A state
``s'`` is terminal when every transition into it is flagged ``terminated``; then entering
it ends the episode with that transition's reward, exactly Gymnasium's ``terminated``
(the terminal state's own rows in ``P``, e.g. CliffWalking's or Taxi's, are ignored).
Termination is read from the transitions reachable from the start distribution: Taxi
lists unreachable states (passenger already at the destination) that are entered without
``terminated`` from other unreachable states; they never occur in an episode.
"""
from __future__ import annotations

import numpy as np

from .._validation import TabularPGError, ValidationError
from ..mdp import MDP

__all__ = ["GymnasiumConversionError", "from_gymnasium", "to_gymnasium"]


class GymnasiumConversionError(TabularPGError, ValueError):
    """The environment has no exact tabular model that tabularpg can represent."""


def _gym():
    try:
        import gymnasium
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Gymnasium interop needs gymnasium: pip install 'tabularpg[gym]'") from exc
    return gymnasium


def from_gymnasium(env, *, gamma: float = 0.99, horizon="auto") -> MDP:
    r"""The exact MDP of a Gymnasium toy-text environment.

    Parameters
    ----------
    env : gymnasium.Env
        FrozenLake, CliffWalking, Taxi, or any env whose ``unwrapped`` has a ``P`` table
        and ``initial_state_distrib`` (or ``isd``).
    gamma : float
    horizon : "auto", int or None
        ``"auto"``: the ``TimeLimit`` of ``env.spec.max_episode_steps`` (None if absent), so
        that ``J`` is what Gymnasium's episodes return; None: infinite.

    Raises
    ------
    GymnasiumConversionError
        No ``P``; a dynamics feature outside ``P`` (Taxi's ``fickle_passenger``); a state
        entered both with and without ``terminated``; rows that do not sum to one.
    """
    u = getattr(env, "unwrapped", env)
    P_dict = getattr(u, "P", None)
    if not isinstance(P_dict, dict):
        raise GymnasiumConversionError(f"{type(u).__name__} has no `P` table: no exact tabular model to read")
    if getattr(u, "fickle_passenger", False):
        raise GymnasiumConversionError(
            f"{type(u).__name__} has fickle_passenger=True: its destination changes outside `P`, so `P` is not "
            "the exact model; make it with fickle_passenger=False")
    isd = getattr(u, "initial_state_distrib", getattr(u, "isd", None))
    if isd is None:
        raise GymnasiumConversionError(f"{type(u).__name__} has no `initial_state_distrib`")
    S = len(P_dict)
    A = len(P_dict[0])
    P = np.zeros((S, A, S))
    R_num = np.zeros((S, A, S))   # sum of p * r per (s, a, s')
    flag = {}                     # (s, a, s') -> terminated
    r_seen = {}
    consistent_r = True
    for s in range(S):
        if len(P_dict[s]) != A:
            raise GymnasiumConversionError(f"state {s} has {len(P_dict[s])} actions; expected {A}")
        for a in range(A):
            for prob, s2, rew, term in P_dict[s][a]:
                s2 = int(s2)
                P[s, a, s2] += prob
                R_num[s, a, s2] += prob * rew
                if prob > 0:
                    key = (s, a, s2)
                    if flag.get(key, bool(term)) != bool(term):
                        raise GymnasiumConversionError(
                            f"P[{s}][{a}] lists next state {s2} both with terminated=True and False")
                    flag[key] = bool(term)
                    if r_seen.get(key, rew) != rew:
                        consistent_r = False
                    r_seen[key] = rew
    isd = np.asarray(isd, dtype=float)
    # Which states end the episode: read from the transitions reachable from the start
    # distribution (a terminal state's own rows, and unreachable states, never matter).
    entered_term = np.zeros(S, dtype=bool)
    entered_live = np.zeros(S, dtype=bool)
    seen = np.zeros(S, dtype=bool)
    stack = [int(x) for x in np.flatnonzero(isd > 0)]
    seen[stack] = True
    entered_live[stack] = True
    while stack:
        s = stack.pop()
        for a in range(A):
            for s2 in np.flatnonzero(P[s, a] > 0):
                if flag[(s, a, int(s2))]:
                    entered_term[s2] = True
                else:
                    entered_live[s2] = True
                    if not seen[s2]:
                        seen[s2] = True
                        stack.append(int(s2))
    mixed = np.flatnonzero(entered_term & entered_live)
    if mixed.size:
        raise GymnasiumConversionError(
            f"states {mixed[:10].tolist()} are entered both with terminated=True and with terminated=False: "
            "termination is not a property of the state, which tabularpg's terminal semantics need")
    terminal = entered_term
    rows = P.sum(axis=2)
    if np.any(np.abs(rows - 1) > 1e-8):
        s, a = np.argwhere(np.abs(rows - 1) > 1e-8)[0]
        raise GymnasiumConversionError(f"`P[{s}][{a}]` probabilities sum to {rows[s, a]:.12g}; expected 1")
    P[terminal] = 0.0
    P[terminal, :, np.flatnonzero(terminal)[:, None]] = 0.0
    for s in np.flatnonzero(terminal):
        P[s, :, s] = 1.0  # never used: no decision is taken in a terminal state
    if consistent_r:
        R = np.divide(R_num, P, out=np.zeros_like(R_num), where=P > 0)
        R[terminal] = 0.0
    else:
        R = R_num.sum(axis=2)  # expected reward: J and its gradient depend only on it
        R[terminal] = 0.0
    mu = isd
    if horizon == "auto":
        spec = getattr(env, "spec", None)
        horizon = getattr(spec, "max_episode_steps", None) if spec is not None else None
    return MDP(P, R, mu, gamma=gamma, horizon=horizon, terminal=terminal if terminal.any() else None)


def to_gymnasium(mdp: MDP):
    """A ``gymnasium.Env`` that samples ``mdp``: Discrete observations and actions;
    ``reset(seed=...)`` draws from ``mu``; ``step`` returns the reward ``R[s, a, s']`` (or
    ``r(s, a)``), ``terminated`` when a terminal state is entered and ``truncated`` at
    the MDP's horizon."""
    gym = _gym()
    spaces = gym.spaces

    class TabularPGEnv(gym.Env):
        metadata = {"render_modes": []}

        def __init__(self):
            self.mdp = mdp
            self.observation_space = spaces.Discrete(mdp.n_states)
            self.action_space = spaces.Discrete(mdp.n_actions)
            self._P = mdp.P_dense()
            self._s = None
            self._t = 0

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self._s = int(self.np_random.choice(mdp.n_states, p=mdp.mu))
            self._t = 0
            return self._s, {}

        def step(self, action):
            if self._s is None:
                raise ValidationError("call reset() before step()")
            a = int(action)
            if not 0 <= a < mdp.n_actions:
                raise ValidationError(f"`action` must lie in [0, {mdp.n_actions}); got {action!r}")
            s = self._s
            s2 = int(self.np_random.choice(mdp.n_states, p=self._P[s, a]))
            r = float(mdp.R[s, a, s2] if mdp.R.ndim == 3 else mdp.r_sa[s, a])
            self._t += 1
            terminated = bool(mdp.terminal[s2])
            truncated = bool(mdp.horizon is not None and self._t >= mdp.horizon and not terminated)
            self._s = s2
            return s2, r, terminated, truncated, {}

    return TabularPGEnv()
