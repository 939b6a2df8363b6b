"""Shared fixtures of the analytics tests: the fixture run, copies of it, and a CLI runner."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ANALYTICS_DIR = Path(__file__).resolve().parent.parent
SOURCE_ROOT = ANALYTICS_DIR.parent
SCHEMAS_DIR = SOURCE_ROOT / "resources" / "schemas"
EXAMPLES_DIR = SOURCE_ROOT / "resources" / "examples"
FIXTURE_RUN = Path(__file__).resolve().parent / "fixtures" / "run-basic"

sys.path.insert(0, str(ANALYTICS_DIR))


def read_json(path):
    """Parse a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_json(path, doc):
    """Write *doc* as JSON (NaN allowed, so that tests can write what the contract forbids)."""
    Path(path).write_text(json.dumps(doc, indent=2), encoding="utf-8")


@pytest.fixture
def run_copy(tmp_path):
    """A private copy of the fixture run directory."""
    dst = tmp_path / FIXTURE_RUN.name
    shutil.copytree(FIXTURE_RUN, dst, ignore=shutil.ignore_patterns("report.html", "*.png"))
    return dst


def run_cli(*args, env_extra=None, pythonpath_first=None):
    """Run ``python3 -m userflux_analytics ARGS`` from the source tree; return the CompletedProcess."""
    env = dict(os.environ)
    paths = ([str(pythonpath_first)] if pythonpath_first else []) + [str(ANALYTICS_DIR)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("MPLBACKEND", "Agg")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "userflux_analytics", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def empty_run(tmp_path):
    """A finished run that completed no request: totals zero, no latency block, empty series."""
    d = tmp_path / "empty-run"
    d.mkdir()
    shutil.copy(FIXTURE_RUN / "config.json", d / "config.json")
    status = read_json(FIXTURE_RUN / "status.json")
    status.update(run_id="empty-run", exit_code=0, message="")
    write_json(d / "status.json", status)
    summary = read_json(FIXTURE_RUN / "summary.json")
    for key in ("latency_ms", "latency_ok_ms", "thresholds", "checks", "server_timing", "protocols"):
        summary.pop(key, None)
    summary["run_id"] = "empty-run"
    summary["totals"] = {"requests": 0, "ok": 0, "errors": 0, "interrupted": 0, "error_rate": 0,
                         "throughput_rps": 0, "iterations": 0, "dropped_iterations": 0, "bytes_received": 0,
                         "bytes_sent": 0, "vus_max": 0, "retries": 0}
    summary.update(status_codes={}, errors_by_kind={}, endpoints=[], timeseries=[],
                   histogram={"unit": "us", "significant_digits": 3, "buckets": []})
    summary["run"]["duration_s"] = 0.2
    write_json(d / "summary.json", summary)
    return d
