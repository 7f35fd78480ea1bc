"""The ``tabularpg`` command line.

``tabularpg verify`` checks every exact identity (and the Monte Carlo estimators against
their exact expectations) on the built-in MDPs and exits non-zero on any failure.
Usage errors exit with code 2.
"""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "build_parser"]


def _cmd_verify(args) -> int:
    from . import verify

    rows = verify.run(seed=args.seed, monte_carlo=not args.no_monte_carlo, quick=not args.full)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
    else:
        print(verify.format_table(rows))
    return 0 if all(r.passed for r in rows) else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each sub-command registers itself here."""
    p = argparse.ArgumentParser(prog="tabularpg", description="Exact and Monte Carlo policy gradients on finite MDPs.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    v = sub.add_parser("verify", help="check every exact identity and estimator on the built-in MDPs")
    v.add_argument("--seed", type=int, default=0, help="seed of the random policies and batches (default 0)")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.add_argument("--no-monte-carlo", action="store_true", help="exact identities only")
    v.add_argument("--full", action="store_true", help="larger Monte Carlo samples")
    v.set_defaults(func=_cmd_verify)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
