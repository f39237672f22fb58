"""The command line of the cassette generator.

::

    python -m tools.cassette_gen --out cassettes              # generate the library (and its README)
    python -m tools.cassette_gen --out /tmp/x --only nova2_tool_call,agent_demo
    python -m tools.cassette_gen --check cassettes            # exit 1 on drift (CI)
    python -m tools.cassette_gen --list                       # the scenarios and what they show

``--jobs N`` records N scenarios at once (default 4; they mostly wait on I/O, and the output does
not depend on it). ``-q`` prints only the summary and problems.

Exit codes: 0 done / up to date, 1 drift found by ``--check``, 2 usage error (unknown scenario,
bad arguments), 3 a scenario failed to record.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from .generate import DEFAULT_JOBS, check, generate, select
from .scenarios import SCENARIOS

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.cassette_gen",
        description="Build the shipped Nova Sonic cassette library by running each scenario against the fake server.",
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", metavar="DIR", help="write the cassettes (and README.md) into DIR")
    mode.add_argument("--check", metavar="DIR", help="regenerate into a temporary directory and compare with DIR")
    mode.add_argument("--list", action="store_true", help="list the scenarios")
    p.add_argument("--only", metavar="NAMES", help="comma-separated scenario names (default: all)")
    p.add_argument("--jobs", type=int, default=DEFAULT_JOBS, metavar="N",
                   help=f"scenarios recorded at once (default {DEFAULT_JOBS}; the output does not depend on it)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems and the summary")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    if args.jobs < 1:
        print(f"error: --jobs must be >= 1 (got {args.jobs})", file=sys.stderr)
        return 2
    try:
        chosen = select(names)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for s in chosen:
            print(f"{s.name:34} {s.title}")
        return 0
    log = None if args.quiet else (lambda line: print(line, flush=True))
    try:
        if args.check:
            report = check(args.check, names, log=log, jobs=args.jobs)
            print(report.render(), file=sys.stdout if report.ok else sys.stderr)
            return 0 if report.ok else 1
        results = generate(args.out, names, log=log, jobs=args.jobs)
    except Exception:
        traceback.print_exc()
        print("error: a scenario failed to record (see the traceback above)", file=sys.stderr)
        return 3
    changed = sum(1 for g in results if g.status != "unchanged")
    print(f"{len(results)} cassettes in {args.out} ({changed} new or updated, of {len(SCENARIOS)} scenarios)")
    return 0
