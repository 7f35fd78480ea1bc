"""pymdptoolbox's layout: ``P`` of shape (A, S, S) (or a list of A matrices) and ``R`` of
shape (S, A), (S,) or (A, S, S). Thin wrappers over :meth:`tabularpg.MDP.to_mdptoolbox`
and :meth:`tabularpg.MDP.from_mdptoolbox`; pymdptoolbox itself is not needed.

Examples
--------
>>> from tabularpg import envs
>>> mdp = envs.garnet(5, 3, 2, rng=0)
>>> P_ass, R_sa = to_mdptoolbox(mdp)
>>> P_ass.shape, R_sa.shape
((3, 5, 5), (5, 3))
>>> bool((from_mdptoolbox(P_ass, R_sa, mdp.mu, gamma=mdp.gamma).P == mdp.P).all())
True
"""
from __future__ import annotations

from .._validation import check_mdp
from ..mdp import MDP

__all__ = ["from_mdptoolbox", "to_mdptoolbox"]


def to_mdptoolbox(mdp: MDP):
    """``(P, R)`` with ``P[a, s, s'] = mdp.P[s, a, s']`` of shape (A, S, S) and ``R`` the
    expected rewards ``r_sa`` of shape (S, A).

    Terminal states, ``mu`` and the horizon have no place in that layout and are dropped
    (pymdptoolbox's solvers then treat terminal states as ordinary ones).
    """
    return check_mdp(mdp).to_mdptoolbox()


def from_mdptoolbox(P, R, mu=None, gamma=0.9, horizon=None, terminal=None, **kw) -> MDP:
    """An :class:`MDP` from pymdptoolbox arrays: ``P`` (A, S, S) or a list of A (sparse)
    (S, S) matrices; ``R`` (S, A), (S,) or (A, S, S). ``mu`` defaults to uniform; the
    other arguments are those of :class:`MDP`."""
    return MDP.from_mdptoolbox(P, R, mu=mu, gamma=gamma, horizon=horizon, terminal=terminal, **kw)
