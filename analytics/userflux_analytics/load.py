"""Reading run directories tolerantly: JSON files, NDJSON streams with a possibly torn last line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

SUMMARY = "summary.json"
STATUS = "status.json"
CONFIG = "config.json"
TIMESERIES = "timeseries.ndjson"
SAMPLES = "samples.ndjson"


class RunDirError(Exception):
    """The run directory cannot be reported on (missing directory or summary.json)."""


def read_json(path: Path) -> Optional[Any]:
    """Return the parsed JSON document at *path*, or None when the file is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


@dataclass
class NdjsonLine:
    """One line of an NDJSON stream: its 1-based number and either a parsed value or a parse error."""

    lineno: int
    value: Any = None
    error: Optional[str] = None
    torn: bool = False  # the last line, not terminated by a newline


def iter_ndjson(path: Path) -> Iterator[NdjsonLine]:
    """Yield every non-blank line of *path*, streaming (files may be large).

    The last line is flagged ``torn`` when it lacks its terminating newline: the writer was cut while
    appending. Empty lines are skipped.
    """
    with open(path, "rb") as f:
        lineno = 0
        for raw in f:
            lineno += 1
            torn = not raw.endswith(b"\n")
            text = raw.strip()
            if not text:
                continue
            try:
                yield NdjsonLine(lineno, json.loads(text), None, torn)
            except ValueError as e:
                yield NdjsonLine(lineno, None, f"invalid JSON ({e})", torn)


def read_ndjson(path: Path) -> list:
    """Return the JSON values of an NDJSON file as readers must see them.

    A torn last line (no newline, not parseable) is dropped; other unparseable lines are skipped too, so
    that a report can always be drawn from what survived. A missing file gives an empty list.
    """
    if not path.is_file():
        return []
    return [ln.value for ln in iter_ndjson(path) if ln.error is None]


@dataclass
class Run:
    """Everything the report needs from one run directory."""

    path: Path
    summary: dict
    status: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    timeseries: list = field(default_factory=list)
    timeseries_source: str = ""  # "summary.json", "timeseries.ndjson" or "" when there is none

    @property
    def samples_path(self) -> Optional[Path]:
        """The samples stream when the run has one."""
        p = self.path / SAMPLES
        return p if p.is_file() else None


def as_dict(value: Any) -> dict:
    """*value* when it is a JSON object, else an empty dict (for optional parts of the artifacts)."""
    return value if isinstance(value, dict) else {}


def load_run(run_dir: Path) -> Run:
    """Load a run directory. Raises :class:`RunDirError` when it has no readable summary.json.

    The time series comes from summary.json when it carries one (final summaries), else from
    timeseries.ndjson (partial summaries, crashed runs).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    if not (run_dir / SUMMARY).is_file():
        raise RunDirError(f"{run_dir}: no {SUMMARY} (the run has not produced results yet)")
    summary = read_json(run_dir / SUMMARY)
    if not isinstance(summary, dict):
        raise RunDirError(f"{run_dir / SUMMARY}: not a readable JSON object")
    run = Run(run_dir, summary, as_dict(read_json(run_dir / STATUS)), as_dict(read_json(run_dir / CONFIG)))
    series = summary.get("timeseries")
    if isinstance(series, list) and series:
        run.timeseries, run.timeseries_source = series, SUMMARY
    else:
        lines = [b for b in read_ndjson(run_dir / TIMESERIES) if isinstance(b, dict)]
        if lines:
            run.timeseries, run.timeseries_source = lines, TIMESERIES
    run.timeseries = sorted((b for b in run.timeseries if isinstance(b, dict) and num(b.get("t_s")) is not None),
                            key=lambda b: b["t_s"])
    return run


def num(value: Any) -> Optional[float]:
    """*value* as a float when it is a JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
