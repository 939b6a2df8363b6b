"""Command line: ``python3 -m userflux_analytics {report,check} RUN_DIR``.

Exit codes follow userfluxctl's: 0 success, 1 contract violations (check), 2 bad usage or a run directory
without summary.json, 3 the environment lacks something (matplotlib, jsonschema or the JSON schemas).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENV = 0, 1, 2, 3


def _fail(code: int, message: str) -> int:
    print(f"userflux-analytics: {message}", file=sys.stderr)
    return code


def cmd_report(args: argparse.Namespace) -> int:
    """Write report.html and the PNG charts; print the report's path."""
    from .load import RunDirError, load_run

    try:
        run = load_run(Path(args.run_dir))
    except RunDirError as e:
        return _fail(EXIT_USAGE, str(e))
    try:
        from .report import write_report  # imports matplotlib
    except ImportError as e:
        return _fail(EXIT_ENV, f"matplotlib is not available ({e}); install python3-matplotlib")
    out_dir = Path(args.out) if args.out else run.path
    try:
        html = write_report(run, out_dir)
    except OSError as e:
        return _fail(EXIT_FAILED, f"cannot write the report: {e}")
    print(html)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a run directory against the contract; list every violation."""
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        return _fail(EXIT_USAGE, f"{run_dir}: no such run directory")
    try:
        from .contract import SchemasNotFound, check_run
        violations = check_run(run_dir, args.schemas)
    except ImportError as e:
        return _fail(EXIT_ENV, f"jsonschema is not available ({e}); install python3-jsonschema")
    except SchemasNotFound as e:
        return _fail(EXIT_ENV, str(e))
    if not violations:
        print(f"contract ok: {run_dir}")
        return EXIT_OK
    print(f"contract violated: {run_dir}: {len(violations)} violation(s)")
    for v in violations:
        print(f"  {v}")
    return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command line."""
    p = argparse.ArgumentParser(prog="python3 -m userflux_analytics",
                                description="Reports and contract checks for Userflux run directories.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{report,check}")
    r = sub.add_parser("report", help="write report.html and PNG charts for a run")
    r.add_argument("run_dir", metavar="RUN_DIR")
    r.add_argument("--out", metavar="DIR", help="write the report here instead of into RUN_DIR")
    r.set_defaults(func=cmd_report)
    c = sub.add_parser("check", help="validate a run's artifacts against the run contract")
    c.add_argument("run_dir", metavar="RUN_DIR")
    c.add_argument("--schemas", metavar="DIR",
                   help="JSON schemas folder (default: $USERFLUX_SCHEMAS_DIR, else found beside the package)")
    c.set_defaults(func=cmd_check)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
