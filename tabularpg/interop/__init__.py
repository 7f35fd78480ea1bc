"""Interoperability: Gymnasium toy-text environments and pymdptoolbox's array layout.

The core never imports Gymnasium; these functions import it when called
(``pip install 'tabularpg[gym]'``).
"""
from .gymnasium import GymnasiumConversionError, from_gymnasium, to_gymnasium
from .mdptoolbox import from_mdptoolbox, to_mdptoolbox

__all__ = ["GymnasiumConversionError", "from_gymnasium", "from_mdptoolbox", "to_gymnasium", "to_mdptoolbox"]
