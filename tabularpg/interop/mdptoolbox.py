"""pymdptoolbox's layout: ``P`` of shape (A, S, S) (or a list of A matrices) and ``R`` of
shape (S, A), (S,) or (A, S, S). Thin wrappers over :meth:`tabularpg.MDP.to_mdptoolbox`
and :meth:`tabularpg.MDP.from_mdptoolbox`."""
from __future__ import annotations

from ..mdp import MDP

__all__ = ["to_mdptoolbox", "from_mdptoolbox"]


def to_mdptoolbox(mdp: MDP):
    """``(P, R)`` with ``P`` (A, S, S) and ``R`` (S, A) (expected rewards); terminal states,
    ``mu`` and the horizon have no place in that layout and are dropped."""
    return mdp.to_mdptoolbox()


def from_mdptoolbox(P, R, mu=None, gamma=0.9, horizon=None, terminal=None, **kw) -> MDP:
    """An :class:`MDP` from pymdptoolbox arrays (``mu`` defaults to uniform)."""
    return MDP.from_mdptoolbox(P, R, mu=mu, gamma=gamma, horizon=horizon, terminal=terminal, **kw)
