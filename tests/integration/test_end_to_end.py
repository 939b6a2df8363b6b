"""The main job end to end: userfluxctl -> userfluxd -> userflux-agent against real servers on loopback."""
import json
import math
import os
import signal
import time

from conftest import assert_contract, free_port, http_json, status_of, summary_of


def steps_config(base_url, load, steps=None, **extra):
    config = {
        "name": "e2e",
        "target": {"base_url": base_url, "timeout": "5s"},
        "load": load,
        "scenario": {"plugin": "steps",
                     "steps": steps or [{"name": "home", "path": "/"}, {"name": "page", "path": "/page?id={{iter}}"}]},
        "sinks": [{"plugin": "file", "samples": True}],
    }
    config.update(extra)
    return config


def test_nginx_ramp_hold_down_counts_match_access_log(ctl, nginx, tmp_path):
    stages = [{"duration": "2s", "target": 4}, {"duration": "2s", "target": 4}, {"duration": "1s", "target": 0}]
    config = steps_config(nginx.url, {"model": "closed", "stages": stages, "graceful_stop": "5s"},
                          thresholds={"error_rate": ["< 0.01"], "latency_ms": ["p99 < 1000"]})
    config["scenario"]["think_time"] = "20ms"
    proc = ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60, check=0)
    run = ctl.only_run()
    summary = assert_contract(run)
    totals = summary["totals"]
    assert status_of(run)["state"] == "finished"
    assert summary["run"]["state"] == "finished"
    assert totals["requests"] > 50
    assert totals["errors"] == 0 and totals["interrupted"] == 0
    # The server's own count of requests equals ours.
    assert nginx.requests_logged() == totals["requests"] + totals["retries"]
    assert summary["status_codes"] == {"200": totals["requests"]}
    assert {e["name"]: e["requests"] for e in summary["endpoints"]} == {"home": totals["requests"] // 2,
                                                                       "page": totals["requests"] // 2}
    assert all(t["ok"] for t in summary["thresholds"]) and len(summary["thresholds"]) == 2
    assert totals["vus_max"] == 4
    # vUsers over time follow the stages: ramp 0 -> 4 over 2 s, hold 4, ramp down to 0.
    # A bucket's vus is the most vUsers active during its second: between the plan's whole vUsers at the top of
    # that second (less one for the start-up lag of a ramp) and the plan's top rounded up.
    def planned(t):
        return 4 * t / 2 if t < 2 else 4 if t < 4 else max(0.0, 4 - 4 * (t - 4))

    for b in summary["timeseries"][:-1]:
        top = max(planned(b["t_s"]), planned(b["t_s"] + b["duration_s"] - 1e-6))
        assert math.floor(top) - 1 <= b["vus"] <= math.ceil(top), (b["t_s"], b["vus"], top)
    vus = {b["t_s"]: b["vus"] for b in summary["timeseries"]}
    assert vus[2] == 4 and vus[3] == 4, vus
    assert summary["timeseries"][-1]["vus"] <= 1
    # Requests flow in every second of the hold.
    assert all(b["requests"] > 0 for b in summary["timeseries"] if 1 <= b["t_s"] <= 3)
    # Samples: one line per request.
    assert len((run / "samples.ndjson").read_text().splitlines()) == totals["requests"]
    assert "requests" in proc.stdout and "p95" in proc.stdout
    # logs.txt has the daemon's and the agent's lines.
    logs = (run / "logs.txt").read_text()
    assert "agent" in logs and "daemon" in logs


def test_demo_gateway_error_rate_matches_gateway_count(ctl, gateway_factory, tmp_path):
    port = gateway_factory("--error-rate", "0.2", "--seed", "7", "--latency-scale", "0.2")
    steps = [
        {"name": "login", "method": "POST", "path": "/api/login", "json": {"user": "u{{vu}}", "password": "pw"},
         "extract": {"token": "json:/token"}},
        {"name": "items", "path": "/api/items", "headers": {"Authorization": "Bearer {{token}}"},
         "checks": [{"status": 200}]},
    ]
    config = steps_config(f"http://127.0.0.1:{port}", {"model": "closed", "vus": 3, "iterations": 40}, steps)
    ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=90, check=0)
    run = ctl.only_run()
    summary = assert_contract(run)
    totals = summary["totals"]
    stats = http_json(port, "/__gateway/stats")
    assert totals["requests"] == 3 * 40 * 2 == stats["requests"]
    assert totals["iterations"] == 120
    # Our status codes are exactly the gateway's own count of its responses, and our errors are exactly its
    # error responses: the injected 5xx, plus the 401s of items requests whose login had failed.
    assert summary["status_codes"] == {k: v for k, v in stats["responses_by_status"].items() if v}
    gateway_errors = sum(n for code, n in stats["responses_by_status"].items() if int(code) >= 400)
    fivexx = sum(n for code, n in summary["status_codes"].items() if code.startswith("5"))
    assert fivexx == stats["errors_5xx"] > 0
    assert totals["errors"] == gateway_errors == summary["errors_by_kind"]["http_status"]
    assert math.isclose(totals["error_rate"], gateway_errors / stats["requests"], abs_tol=1e-6)
    # The gateway's Server-Timing header is broken down per backend service.
    services = {s["service"] for s in summary["server_timing"]}
    assert {"auth", "catalog", "inventory"} <= services
    # A failed check is counted on its own and does not add errors.
    items_check = [c for c in summary["checks"] if c["step"] == "items"][0]
    assert items_check["passes"] + items_check["fails"] == 120


def test_closed_port_is_classified_connect_refused(ctl, tmp_path):
    port = free_port()  # nothing listens there
    config = steps_config(f"http://127.0.0.1:{port}", {"model": "closed", "vus": 2, "iterations": 10},
                          [{"name": "home", "path": "/"}])
    proc = ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60)
    assert proc.returncode == 0, proc.stderr
    run = ctl.only_run()
    summary = assert_contract(run)
    totals = summary["totals"]
    assert totals["requests"] == 20 and totals["errors"] == 20 and totals["ok"] == 0
    assert summary["errors_by_kind"]["connect_refused"] == 20
    assert totals["error_rate"] == 1.0
    assert summary["status_codes"] == {}
    assert status_of(run)["state"] == "finished"


def test_sigint_to_agent_aborts_with_final_summary(ctl, nginx, tmp_path):
    config = steps_config(nginx.url, {"model": "closed", "stages": [{"duration": "0s", "target": 3},
                                                                   {"duration": "60s", "target": 3}],
                                      "graceful_stop": "2s"})
    config["scenario"]["think_time"] = "10ms"
    follower = ctl.popen("run", str(ctl.write_config(tmp_path, config)), "--follow")
    try:
        deadline = time.monotonic() + 20
        pid = None
        while time.monotonic() < deadline:
            runs = [d for d in ctl.runs.iterdir() if d.is_dir()] if ctl.runs.exists() else []
            if runs and (runs[0] / "timeseries.ndjson").exists():
                status = status_of(runs[0])
                if status.get("state") == "running" and status.get("agent_pid"):
                    pid = status["agent_pid"]
                    break
            time.sleep(0.1)
        assert pid, "the run never started"
        time.sleep(1.0)
        sent = time.monotonic()
        os.kill(pid, signal.SIGINT)
        out, err = follower.communicate(timeout=30)
        stopped_after = time.monotonic() - sent
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 130, (out, err)
    assert stopped_after < 2 + 3, stopped_after  # graceful_stop + margin
    run = ctl.only_run()
    status = status_of(run)
    assert status["state"] == "aborted"
    assert status["exit_code"] == 130
    summary = assert_contract(run)
    assert summary["final"] is True and summary["run"]["state"] == "aborted"
    assert summary["totals"]["requests"] > 0
    # nginx logs every request it answered; an interrupted one may or may not have reached it.
    t = summary["totals"]
    assert t["ok"] + t["errors"] <= nginx.requests_logged() <= t["requests"] + t["retries"]
    samples = (run / "samples.ndjson").read_text()
    assert samples.endswith("\n")
    assert len(samples.splitlines()) == summary["totals"]["requests"]


def test_invalid_config_names_every_field_and_exits_2(ctl, tmp_path):
    config = steps_config("http://127.0.0.1:1", {"model": "closed", "stages": [{"duration": "3x", "target": 2}]})
    config["target"]["timout"] = "1s"
    config["scenario"]["steps"][0]["method"] = "FETCH"
    path = ctl.write_config(tmp_path, config)
    for args in (("validate", str(path)), ("run", str(path))):
        proc = ctl(*args, timeout=60)
        assert proc.returncode == 2, proc
        out = proc.stdout + proc.stderr
        assert "load.stages[0].duration" in out
        assert "target.timout" in out and "timeout" in out
        assert "scenario.steps[0].method" in out
    # Nothing was created for a refused run.
    assert not ctl.runs.exists() or not [d for d in ctl.runs.iterdir() if d.is_dir()]


def test_report_from_a_real_run(ctl, nginx, tmp_path):
    config = steps_config(nginx.url, {"model": "closed", "stages": [{"duration": "2s", "target": 2},
                                                                    {"duration": "1s", "target": 0}]})
    ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60, check=0)
    run = ctl.only_run()
    proc = ctl("report", run.name, timeout=120, check=0)
    assert "report.html" in proc.stdout
    html = (run / "report.html").read_text()
    assert "home" in html and "page" in html
    for png in ("throughput.png", "latency.png", "latency_hist.png"):
        data = (run / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_failed_threshold_exits_99_and_abort_on_fail_stops_early(ctl, nginx, tmp_path):
    load = {"model": "closed", "vus": 2, "iterations": 20}
    config = steps_config(nginx.url, load, thresholds={"latency_ms": ["p50 < 0.001", "max < 60000"],
                                                       "error_rate": ["< 0.5"]})
    proc = ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60)
    assert proc.returncode == 99, proc
    run = ctl.only_run()
    summary = assert_contract(run)
    verdicts = {(t["metric"], t["expr"]): t["ok"] for t in summary["thresholds"]}
    assert verdicts == {("latency_ms", "p50 < 0.001"): False, ("latency_ms", "max < 60000"): True,
                        ("error_rate", "< 0.5"): True}
    assert status_of(run)["exit_code"] == 99 and status_of(run)["state"] == "finished"

    # abort_on_fail: a 60 s plan stopped after its 1 s delay.
    long = steps_config(nginx.url, {"model": "closed", "stages": [{"duration": "0s", "target": 2},
                                                                  {"duration": "60s", "target": 2}],
                                    "graceful_stop": "1s"},
                        thresholds={"latency_ms": [{"expr": "p50 < 0.001", "abort_on_fail": True, "delay": "1s"}]})
    started = time.monotonic()
    proc = ctl("run", str(ctl.write_config(tmp_path, long, "long.json")), "--follow", timeout=60)
    assert proc.returncode == 99, proc
    assert time.monotonic() - started < 15
    aborted = [d for d in ctl.runs.iterdir() if d.is_dir() and d != run][0]
    status = status_of(aborted)
    assert status["state"] == "aborted" and status["exit_code"] == 99
    assert "abort_on_fail" in status["message"] and "p50 < 0.001" in status["message"]
    assert assert_contract(aborted)["run"]["duration_s"] < 10


def test_report_without_matplotlib_exits_3_with_one_clear_line(ctl, nginx, tmp_path):
    config = steps_config(nginx.url, {"model": "closed", "vus": 1, "iterations": 3})
    ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60, check=0)
    fake = tmp_path / "python-without-matplotlib"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named matplotlib' >&2\nexit 1\n")
    fake.chmod(0o755)
    ctl.env["USERFLUX_PYTHON"] = str(fake)
    proc = ctl("report", ctl.only_run().name, timeout=60)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "matplotlib" in lines[0] and "USERFLUX_PYTHON" in lines[0], proc.stderr
    assert not (ctl.only_run() / "report.html").exists()


def test_server_timing_breakdown_and_scoped_thresholds(ctl, gateway_factory, tmp_path):
    port = gateway_factory("--latency-scale", "0.5")
    steps = [
        {"name": "login", "method": "POST", "path": "/api/login", "json": {"user": "u{{vu}}", "password": "pw"},
         "extract": {"token": "json:/token"}},
        {"name": "items", "path": "/api/items", "headers": {"Authorization": "Bearer {{token}}"}},
    ]
    thresholds = {"latency_ms{endpoint=items}": ["p95 < 2000"],
                  "server_timing_ms{service=catalog}": ["p95 < 2000", "count == 20"],
                  "server_timing_ms{service=auth}": ["p50 < 0.001"],
                  "error_rate{endpoint=login}": ["< 0.01"]}
    config = steps_config(f"http://127.0.0.1:{port}", {"model": "closed", "vus": 2, "iterations": 10}, steps,
                          thresholds=thresholds)
    proc = ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60)
    assert proc.returncode == 99, proc
    summary = assert_contract(ctl.only_run())
    timing = {s["service"]: s for s in summary["server_timing"]}
    # Login calls auth; items call catalog and inventory in parallel; every API response names the gateway too.
    assert {k: v["count"] for k, v in timing.items()} == {"auth": 20, "catalog": 20, "inventory": 20, "gateway": 40}
    # The gateway waits for the slower of catalog and inventory: its time covers both on every items response.
    assert timing["gateway"]["latency_ms"]["max"] >= timing["catalog"]["latency_ms"]["min"]
    verdicts = {(t["metric"], t["expr"]): (t["ok"], t["observed"]) for t in summary["thresholds"]}
    assert verdicts[("server_timing_ms{service=catalog}", "count == 20")] == (True, 20)
    assert verdicts[("server_timing_ms{service=auth}", "p50 < 0.001")][0] is False
    assert verdicts[("latency_ms{endpoint=items}", "p95 < 2000")][0] is True
    assert verdicts[("error_rate{endpoint=login}", "< 0.01")] == (True, 0.0)
    assert "FAIL" in proc.stdout and "server_timing_ms{service=auth}" in proc.stdout
