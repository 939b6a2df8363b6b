"""The contract checker: the fixture passes, and every invariant and schema is enforced."""

import json

import pytest

from conftest import SCHEMAS_DIR, read_json, run_cli, write_json
from userflux_analytics.contract import check_run, default_schemas_dir


def edit(run, name, change):
    """Apply *change* to the parsed JSON file *name* of *run* and write it back."""
    doc = read_json(run / name)
    change(doc)
    write_json(run / name, doc)


def edit_summary(change):
    return lambda run: edit(run, "summary.json", change)


def bump(d, key, by=1):
    d[key] += by


def test_fixture_run_is_valid():
    from conftest import FIXTURE_RUN
    assert check_run(FIXTURE_RUN) == []


def test_empty_run_is_valid(empty_run):
    assert check_run(empty_run) == []


def test_cli_ok_and_violations(run_copy):
    proc = run_cli("check", run_copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"contract ok: {run_copy}"
    edit(run_copy, "summary.json", lambda s: bump(s["totals"], "ok"))
    proc = run_cli("check", run_copy, "--schemas", SCHEMAS_DIR)
    assert proc.returncode == 1
    assert "totals.requests" in proc.stdout


def test_cli_missing_run_dir_exits_2(tmp_path):
    assert run_cli("check", tmp_path / "nope").returncode == 2


def test_default_schemas_dir_is_the_source_tree():
    assert default_schemas_dir().resolve() == SCHEMAS_DIR.resolve()


def _set_nan(s):
    s["totals"]["throughput_rps"] = float("nan")


def _swap_percentiles(block):
    block["p95"], block["p99"] = block["p99"] + 1, block["p95"]


def _drop_sample(run):
    lines = (run / "samples.ndjson").read_text().splitlines(keepends=True)
    (run / "samples.ndjson").write_text("".join(lines[:-1]))


def _torn_samples(run):
    with open(run / "samples.ndjson", "a") as f:
        f.write('{"t_s": 20.4, "vu": 3')


def _bad_sample(run):
    with open(run / "samples.ndjson", "a") as f:
        f.write(json.dumps({"t_s": 1, "step": "x", "method": "GET", "url": "u", "status": 200,
                            "latency_ms": 1, "outcome": "maybe"}) + "\n")


def _bucket_shift(s):
    bump(s["timeseries"][2], "requests")
    bump(s["timeseries"][2], "ok")


# (id, mutation of the run directory, a substring expected among the violations)
BROKEN = [
    ("requests", edit_summary(lambda s: bump(s["totals"], "requests")),
     "totals.requests (544) != ok + errors + interrupted"),
    ("errors_by_kind", edit_summary(lambda s: bump(s["errors_by_kind"], "timeout")),
     "sum(errors_by_kind) (10) != totals.errors (9)"),
    ("error_rate", edit_summary(lambda s: s["totals"].update(error_rate=0.5)),
     "totals: error_rate (0.5) != errors / (ok + errors)"),
    ("endpoint_error_rate", edit_summary(lambda s: s["endpoints"][0].update(error_rate=0.25)),
     "endpoints[0] (login): error_rate (0.25)"),
    ("status_codes", edit_summary(lambda s: bump(s["status_codes"], "200")),
     "sum(status_codes) (540) != ok + errors_by_kind.http_status (532 + 7)"),
    ("percentiles", edit_summary(lambda s: _swap_percentiles(s["latency_ms"])), "summary.json: latency_ms: p95"),
    ("endpoint_percentiles", edit_summary(lambda s: _swap_percentiles(s["endpoints"][1]["latency_ms"])),
     "endpoints[1] (items).latency_ms: p95"),
    ("timeseries_percentiles", edit_summary(lambda s: _swap_percentiles(s["timeseries"][5]["latency_ms"])),
     "timeseries[5].latency_ms: p95"),
    ("server_timing_percentiles", edit_summary(lambda s: _swap_percentiles(s["server_timing"][0]["latency_ms"])),
     "server_timing[0] (auth).latency_ms: p95"),
    ("min_max", edit_summary(lambda s: s["latency_ms"].update(min=5000)), "latency_ms: min (5000) > p50"),
    ("nan", edit_summary(_set_nan), "$.totals.throughput_rps: number is not finite"),
    ("timeseries_sum", edit_summary(_bucket_shift), "sum(timeseries.requests) (542) != ok + errors (541)"),
    ("bucket_requests", edit_summary(lambda s: bump(s["timeseries"][4], "requests")),
     "timeseries[4]: requests"),
    ("samples_count", _drop_sample, "samples.ndjson: 542 lines != totals.requests (543)"),
    ("samples_torn_when_final", _torn_samples, "torn last line"),
    ("sample_schema", _bad_sample, "samples.ndjson line 544: $.outcome"),
    ("histogram", edit_summary(lambda s: bump(s["histogram"]["buckets"][0], 1)),
     "sum(histogram.buckets counts) (542) != latency_ms.count (541)"),
    ("histogram_order", edit_summary(lambda s: s["histogram"]["buckets"].reverse()),
     "histogram.buckets not sorted"),
    ("endpoints_sum", edit_summary(lambda s: bump(s["endpoints"][0], "requests")),
     "sum(endpoints.requests) (544) != totals.requests (543)"),
    ("latency_count", edit_summary(lambda s: bump(s["latency_ms"], "count")),
     "latency_ms.count (542) != ok + errors (541)"),
    ("latency_missing", edit_summary(lambda s: s.pop("latency_ms")), "latency_ms missing"),
    ("summary_schema_const", edit_summary(lambda s: s.update(schema="userflux.summary/2")), "$.schema"),
    ("summary_required", edit_summary(lambda s: s.pop("totals")), "'totals' is a required property"),
    ("final_requires_timeseries", edit_summary(lambda s: s.pop("timeseries")), "'timeseries' is a required"),
    ("summary_negative", edit_summary(lambda s: s["totals"].update(errors=-1)), "$.totals.errors"),
    ("run_id_mismatch", lambda r: edit(r, "status.json", lambda st: st.update(run_id="other")), "run_id"),
    ("status_state", lambda r: edit(r, "status.json", lambda st: st.update(state="done")), "status.json: $.state"),
    ("status_time", lambda r: edit(r, "status.json", lambda st: st.update(created_at="yesterday")),
     "status.json: $.created_at"),
    ("config_unknown_field", lambda r: edit(r, "config.json", lambda c: c["target"].update(time_out="1s")),
     "config.json: $.target: Additional properties are not allowed ('time_out' was unexpected)"),
    ("config_missing", lambda r: (r / "config.json").unlink(), "config.json: missing"),
    ("timeseries_line", lambda r: (r / "timeseries.ndjson").write_text('{"t_s": 0}\n'),
     "timeseries.ndjson line 1: $: 'duration_s' is a required property"),
    ("timeseries_invalid_json", lambda r: (r / "timeseries.ndjson").write_text('{"t_s": 0,,}\n'),
     "timeseries.ndjson line 1: invalid JSON"),
    ("finished_but_partial", edit_summary(lambda s: s.update(final=False)), "final is not true"),
]


@pytest.mark.parametrize("mutate,expected", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_copies_are_reported(run_copy, mutate, expected):
    mutate(run_copy)
    violations = check_run(run_copy)
    assert any(expected in v for v in violations), "\n".join(violations)


def test_every_violation_is_listed(run_copy):
    edit(run_copy, "summary.json", lambda s: (bump(s["totals"], "requests"), bump(s["status_codes"], "201")))
    violations = check_run(run_copy)
    assert any("totals.requests" in v for v in violations)
    assert any("sum(status_codes)" in v for v in violations)
    proc = run_cli("check", run_copy)
    assert proc.returncode == 1
    assert all(v in proc.stdout for v in violations)


def test_partial_run_tolerates_torn_timeseries_and_missing_parts(run_copy):
    edit(run_copy, "summary.json", lambda s: [s.update(final=False)] + [
        s.pop(k) for k in ("timeseries", "endpoints", "histogram")])
    edit(run_copy, "status.json", lambda st: st.update(state="running", ended_at=None, exit_code=None))
    (run_copy / "samples.ndjson").unlink()
    with open(run_copy / "timeseries.ndjson", "a") as f:
        f.write('{"t_s": 21, "durat')
    assert check_run(run_copy) == []


def test_many_bad_lines_are_capped(run_copy):
    (run_copy / "samples.ndjson").write_text("not json\n" * 100)
    violations = check_run(run_copy)
    assert sum("samples.ndjson line" in v for v in violations) == 20
    assert any("80 more violations" in v for v in violations)
