"""``python -m tabularpg`` is the ``tabularpg`` command."""
import sys

from .cli import main

sys.exit(main())
