"""The run contract checker: JSON Schemas plus the invariants of CONTRACT.md on every artifact.

``check_run(run_dir)`` returns a list of human-readable violations (empty when the run is valid). It is used
by ``python3 -m userflux_analytics check`` and by the integration tests of the C++ side.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from .load import CONFIG, SAMPLES, STATUS, SUMMARY, TIMESERIES, iter_ndjson, num

SCHEMA_FILES = {
    CONFIG: "config.schema.json",
    STATUS: "status.schema.json",
    SUMMARY: "summary.schema.json",
    TIMESERIES: "timeseries-line.schema.json",
    SAMPLES: "sample-line.schema.json",
}
#: Percentile keys of a latency block, in the order their values must not decrease.
PERCENTILE_ORDER = ("min", "p50", "p75", "p90", "p95", "p99", "p99_9", "max")
#: At most this many violations are listed per NDJSON file (a broken writer breaks every line).
MAX_LINE_VIOLATIONS = 20

PathLike = Union[str, "os.PathLike[str]"]


class SchemasNotFound(Exception):
    """No directory with the JSON Schemas was found (an installation problem, not a contract violation)."""


def default_schemas_dir() -> Path:
    """Locate the JSON Schemas.

    In order: ``$USERFLUX_SCHEMAS_DIR``; ``<package>/../../resources/schemas`` (source tree);
    ``<package>/../../schemas`` (install and build trees: ``share/userflux/analytics/userflux_analytics``
    beside ``share/userflux/schemas``); ``<package>/../schemas``. Symlinked locations are tried both as
    given and resolved. Raises :class:`SchemasNotFound` when none holds ``summary.schema.json``.
    """
    env = os.environ.get("USERFLUX_SCHEMAS_DIR")
    if env:
        return Path(env)
    here = Path(os.path.abspath(os.path.dirname(__file__)))
    candidates = []
    for pkg in (here, here.resolve()):
        candidates += [pkg.parent.parent / "resources" / "schemas", pkg.parent.parent / "schemas",
                       pkg.parent / "schemas"]
    for c in candidates:
        if (c / SCHEMA_FILES[SUMMARY]).is_file():
            return c
    raise SchemasNotFound("JSON schemas not found (looked in: " + ", ".join(map(str, candidates))
                          + "); set USERFLUX_SCHEMAS_DIR")


def load_validators(schemas_dir: Optional[PathLike] = None) -> dict:
    """Return ``{artifact file name: jsonschema validator}`` built from the schemas in *schemas_dir*."""
    import jsonschema  # imported here so that `report` works without python3-jsonschema

    schemas_dir = Path(schemas_dir) if schemas_dir else default_schemas_dir()
    validators = {}
    for artifact, name in SCHEMA_FILES.items():
        path = schemas_dir / name
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SchemasNotFound(f"{path}: cannot load schema ({e})") from e
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        validators[artifact] = cls(schema)
    return validators


def _where(error) -> str:
    """A JSONPath-like location for a jsonschema error."""
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _short(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _leaf_errors(error) -> list:
    """The errors to show for one jsonschema error.

    A failed oneOf/anyOf only says "not valid under any of the given schemas"; show instead every error
    of the branch that came closest (fewest errors), recursively.
    """
    if not error.context:
        return [error]
    branches = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    closest = min(branches.values(), key=len)
    return [leaf for sub in closest for leaf in _leaf_errors(sub)]


def schema_violations(validator, doc: Any, what: str) -> list:
    """Every schema error of *doc*, as ``"<what>: <json path>: <message>"`` lines."""
    errors = [leaf for err in validator.iter_errors(doc) for leaf in _leaf_errors(err)]
    lines = {f"{what}: {_where(e)}: {_short(e.message)}": list(map(str, e.absolute_path)) for e in errors}
    return sorted(lines, key=lambda line: lines[line])


def _nonfinite(doc: Any, path: str = "$") -> Iterable[str]:
    """JSON paths of every NaN or infinite number in *doc*."""
    if isinstance(doc, float) and not math.isfinite(doc):
        yield path
    elif isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nonfinite(v, f"{path}.{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _nonfinite(v, f"{path}[{i}]")


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


def _as_int(value: Any) -> int:
    """*value* as an int, 0 when it is not a finite number (the schema and finiteness checks report those)."""
    v = num(value)
    return int(v) if v is not None and math.isfinite(v) else 0


def _int(d: Any, key: str) -> int:
    """An integer field of the object *d*, 0 when missing or not a number."""
    return _as_int(d.get(key)) if isinstance(d, dict) else 0


def latency_order_violations(block: Any, where: str) -> list:
    """``min <= p50 <= ... <= max`` (over the keys present) and ``min <= mean <= max`` for one block."""
    if not isinstance(block, dict):
        return []
    out = []
    present = [(k, num(block.get(k))) for k in PERCENTILE_ORDER if num(block.get(k)) is not None]
    for (k1, v1), (k2, v2) in zip(present, present[1:]):
        if v1 > v2 * (1 + 1e-9) + 1e-9:
            out.append(f"{where}: {k1} ({v1:g}) > {k2} ({v2:g})")
    mean, lo, hi = num(block.get("mean")), num(block.get("min")), num(block.get("max"))
    if mean is not None and lo is not None and hi is not None and not (lo - 1e-9 <= mean <= hi + 1e-9):
        out.append(f"{where}: mean ({mean:g}) outside [min, max] ([{lo:g}, {hi:g}])")
    return out


def _rate_violation(d: dict, where: str) -> list:
    ok, errors = _int(d, "ok"), _int(d, "errors")
    rate = num(d.get("error_rate"))
    expected = errors / (ok + errors) if ok + errors else 0.0
    if rate is not None and not _close(rate, expected):
        return [f"{where}: error_rate ({rate:g}) != errors / (ok + errors) ({expected:g})"]
    return []


def summary_invariants(summary: dict, what: str = SUMMARY) -> list:
    """The invariants of CONTRACT.md "Definitions and invariants" that summary.json alone must satisfy."""
    if not isinstance(summary, dict):
        return [f"{what}: not a JSON object"]
    out = [f"{what}: {p}: number is not finite" for p in _nonfinite(summary)]
    totals = summary.get("totals") if isinstance(summary.get("totals"), dict) else {}
    req, ok, errors, intr = (_int(totals, k) for k in ("requests", "ok", "errors", "interrupted"))
    finished = ok + errors

    if req != ok + errors + intr:
        out.append(f"{what}: totals.requests ({req}) != ok + errors + interrupted ({ok} + {errors} + {intr})")
    out += _rate_violation(totals, f"{what}: totals")

    by_kind = summary.get("errors_by_kind")
    if isinstance(by_kind, dict):
        total = sum(_int(by_kind, k) for k in by_kind)
        if total != errors:
            out.append(f"{what}: sum(errors_by_kind) ({total}) != totals.errors ({errors})")
    codes = summary.get("status_codes")
    if isinstance(codes, dict):
        total = sum(_int(codes, k) for k in codes)
        http = _int(by_kind, "http_status") if isinstance(by_kind, dict) else 0
        if total != ok + http:
            out.append(f"{what}: sum(status_codes) ({total}) != ok + errors_by_kind.http_status ({ok} + {http})")

    # Latency blocks: ordered percentiles; counts matching what they cover; absent when empty.
    lat = summary.get("latency_ms")
    if isinstance(lat, dict):
        if _int(lat, "count") != finished:
            out.append(f"{what}: latency_ms.count ({_int(lat, 'count')}) != ok + errors ({finished})")
    elif finished:
        out.append(f"{what}: latency_ms missing although {finished} requests finished")
    lat_ok = summary.get("latency_ok_ms")
    if isinstance(lat_ok, dict) and _int(lat_ok, "count") != ok:
        out.append(f"{what}: latency_ok_ms.count ({_int(lat_ok, 'count')}) != ok ({ok})")
    for key in ("latency_ms", "latency_ok_ms", "latency_corrected_ms"):
        out += latency_order_violations(summary.get(key), f"{what}: {key}")

    endpoints = summary.get("endpoints")
    if isinstance(endpoints, list):
        eps = [e for e in endpoints if isinstance(e, dict)]
        for i, ep in enumerate(eps):
            where = f"{what}: endpoints[{i}] ({ep.get('name')})"
            e_req, e_ok, e_err = _int(ep, "requests"), _int(ep, "ok"), _int(ep, "errors")
            if "interrupted" in ep and e_req != e_ok + e_err + _int(ep, "interrupted"):
                out.append(f"{where}: requests ({e_req}) != ok + errors + interrupted")
            elif e_req < e_ok + e_err:
                out.append(f"{where}: requests ({e_req}) < ok + errors ({e_ok + e_err})")
            out += _rate_violation(ep, where)
            e_lat = ep.get("latency_ms")
            if isinstance(e_lat, dict) and _int(e_lat, "count") != e_ok + e_err:
                out.append(f"{where}: latency_ms.count ({_int(e_lat, 'count')}) != ok + errors ({e_ok + e_err})")
            out += latency_order_violations(e_lat, f"{where}.latency_ms")
        for key, total in (("requests", req), ("ok", ok), ("errors", errors)):
            s = sum(_int(e, key) for e in eps)
            if s != total:
                out.append(f"{what}: sum(endpoints.{key}) ({s}) != totals.{key} ({total})")

    for i, st in enumerate(summary.get("server_timing") or []):
        if isinstance(st, dict):
            out += latency_order_violations(st.get("latency_ms"),
                                            f"{what}: server_timing[{i}] ({st.get('service')}).latency_ms")

    series = summary.get("timeseries")
    if isinstance(series, list):
        out += timeseries_violations(series, f"{what}: timeseries")
        if summary.get("final") is True:
            s = sum(_int(b, "requests") for b in series)
            if s != finished:
                out.append(f"{what}: sum(timeseries.requests) ({s}) != ok + errors ({finished})")

    hist = summary.get("histogram")
    if isinstance(hist, dict) and isinstance(hist.get("buckets"), list):
        buckets = [b for b in hist["buckets"] if isinstance(b, list) and len(b) == 2]
        s = sum(_as_int(b[1]) for b in buckets)
        expected = _int(lat, "count") if isinstance(lat, dict) else 0
        if s != expected:
            out.append(f"{what}: sum(histogram.buckets counts) ({s}) != latency_ms.count ({expected})")
        uppers = [num(b[0]) for b in buckets]
        if any(a is not None and b is not None and a >= b for a, b in zip(uppers, uppers[1:])):
            out.append(f"{what}: histogram.buckets not sorted by strictly increasing upper value")
    return out


def timeseries_violations(buckets: list, where: str) -> list:
    """Per-bucket invariants: requests == ok + errors, increasing t_s, ordered percentiles."""
    out, last_t = [], None
    for i, b in enumerate(buckets):
        if not isinstance(b, dict):
            continue
        if _int(b, "requests") != _int(b, "ok") + _int(b, "errors"):
            out.append(f"{where}[{i}]: requests ({_int(b, 'requests')}) != ok + errors "
                       f"({_int(b, 'ok')} + {_int(b, 'errors')})")
        t = num(b.get("t_s"))
        if t is not None and last_t is not None and t <= last_t:
            out.append(f"{where}[{i}]: t_s ({t:g}) does not increase (previous {last_t:g})")
        last_t = t if t is not None else last_t
        out += latency_order_violations(b.get("latency_ms"), f"{where}[{i}].latency_ms")
    return out


def _check_ndjson(path: Path, validator, final: bool, out: list, on_value) -> None:
    """Validate every line of an NDJSON stream, streaming; pass each whole line's value to *on_value*."""
    problems = []
    for line in iter_ndjson(path):
        what = f"{path.name} line {line.lineno}"
        if line.torn:
            if final:
                problems.append(f"{what}: torn last line (no newline) although summary.json is final")
            continue  # a torn last line is dropped by readers
        if line.error:
            problems.append(f"{what}: {line.error}")
            continue
        problems += [f"{what}: {p}: number is not finite" for p in _nonfinite(line.value)]
        if validator is not None:
            problems += schema_violations(validator, line.value, what)
        on_value(line.value)
    if len(problems) > MAX_LINE_VIOLATIONS:
        problems = problems[:MAX_LINE_VIOLATIONS] + [
            f"{path.name}: ... and {len(problems) - MAX_LINE_VIOLATIONS} more violations"]
    out += problems


def check_run(run_dir: PathLike, schemas_dir: Optional[PathLike] = None) -> list:
    """Check a run directory against the run contract; return every violation found (empty: all hold).

    Validates config.json, status.json, summary.json and each line of timeseries.ndjson and samples.ndjson
    (the streams are optional) against the JSON Schemas, then the invariants of summary.json, the per-line
    invariants of timeseries.ndjson, and, for a final summary, the agreement of samples.ndjson with the
    totals. *schemas_dir* defaults to :func:`default_schemas_dir`. Raises :class:`SchemasNotFound` when
    the schemas cannot be loaded, ``ImportError`` when python3-jsonschema is missing.
    """
    run_dir = Path(run_dir)
    validators = load_validators(schemas_dir)
    if not run_dir.is_dir():
        return [f"{run_dir}: not a directory"]
    out = []
    docs = {}
    for name in (CONFIG, STATUS, SUMMARY):
        path = run_dir / name
        if not path.is_file():
            out.append(f"{name}: missing")
            continue
        try:
            docs[name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            out.append(f"{name}: not valid JSON ({e})")
            continue
        out += schema_violations(validators[name], docs[name], name)
        if name != SUMMARY:
            out += [f"{name}: {p}: number is not finite" for p in _nonfinite(docs[name])]

    summary = docs.get(SUMMARY) if isinstance(docs.get(SUMMARY), dict) else None
    status = docs.get(STATUS) if isinstance(docs.get(STATUS), dict) else None
    final = bool(summary and summary.get("final") is True)
    if summary is not None:
        out += summary_invariants(summary)
    if summary is not None and status is not None:
        if summary.get("run_id") != status.get("run_id"):
            out.append(f"summary.json: run_id ({summary.get('run_id')!r}) != status.json run_id "
                       f"({status.get('run_id')!r})")
        if status.get("state") == "finished" and not final:
            out.append("summary.json: final is not true although status.json says the run finished")

    if (run_dir / TIMESERIES).is_file():
        lines = []
        _check_ndjson(run_dir / TIMESERIES, validators[TIMESERIES], final, out, lines.append)
        out += timeseries_violations(lines, TIMESERIES)
    if (run_dir / SAMPLES).is_file():
        outcomes = {"lines": 0, "ok": 0, "error": 0, "interrupted": 0}

        def count(sample: Any) -> None:
            outcomes["lines"] += 1
            if isinstance(sample, dict) and sample.get("outcome") in outcomes:
                outcomes[sample["outcome"]] += 1

        _check_ndjson(run_dir / SAMPLES, validators[SAMPLES], final, out, count)
        if final and summary is not None:
            out += _samples_vs_totals(outcomes, summary.get("totals"))
    return out


def _samples_vs_totals(outcomes: dict, totals: Any) -> list:
    """A final run's samples: one line per request, with outcomes adding up to the totals."""
    out = []
    if outcomes["lines"] != _int(totals, "requests"):
        out.append(f"samples.ndjson: {outcomes['lines']} lines != totals.requests ({_int(totals, 'requests')})")
    for outcome, key in (("ok", "ok"), ("error", "errors"), ("interrupted", "interrupted")):
        if outcomes[outcome] != _int(totals, key):
            out.append(f"samples.ndjson: {outcomes[outcome]} samples with outcome {outcome!r} "
                       f"!= totals.{key} ({_int(totals, key)})")
    return out
