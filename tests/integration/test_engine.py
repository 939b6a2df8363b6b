"""The engine as a user sees it through userfluxctl: per-vUser cookies, concurrency beyond QNAM's 6 connections,
a killed agent, and the installed (relocatable) tree."""
import json
import math
import os
import signal
import subprocess
import time

from conftest import BUILD, REPO, Ctl, assert_contract, status_of
from test_end_to_end import steps_config


def test_cookies_are_kept_per_vuser(ctl, testserver, tmp_path):
    steps = [
        {"name": "set", "path": "/set-cookie?name=who&value=vu{{vu}}"},
        # The server echoes the request headers: each vUser must send its own cookie, never another's.
        {"name": "echo", "path": "/headers", "checks": [{"body_contains": 'who=vu{{vu}}"'}]},
    ]
    config = steps_config(testserver.url, {"model": "closed", "vus": 8, "iterations": 5}, steps)
    ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60, check=0)
    summary = assert_contract(ctl.only_run())
    check = [c for c in summary["checks"] if c["step"] == "echo"][0]
    assert check == {"name": 'body contains "who=vu{{vu}}""', "step": "echo", "passes": 40, "fails": 0}


def test_more_than_six_concurrent_requests_to_one_host(ctl, testserver, tmp_path):
    # QNAM allows 6 HTTP/1.1 connections per host per manager: 24 vUsers must still have 24 requests in flight.
    config = steps_config(testserver.url, {"model": "closed", "vus": 24, "iterations": 3, "workers": 2},
                          [{"name": "slow", "path": "/delay?ms=400"}])
    ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60, check=0)
    summary = assert_contract(ctl.only_run())
    stats = testserver.stats()
    assert summary["totals"]["requests"] == 72 == stats["requests_received"] == stats["responses_completed"]
    assert stats["max_in_flight"] == 24
    # 3 rounds of 400 ms, not 12.
    assert summary["run"]["duration_s"] < 3.0
    assert summary["latency_ms"]["p99"] < 1000


def test_killed_agent_leaves_a_failed_run_with_its_record(ctl, testserver, tmp_path):
    config = steps_config(testserver.url, {"model": "closed", "stages": [{"duration": "0s", "target": 2},
                                                                      {"duration": "60s", "target": 2}]},
                          [{"name": "ok", "path": "/delay?ms=20"}])
    ctl("run", str(ctl.write_config(tmp_path, config)), check=0)
    run = ctl.only_run()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (run / "timeseries.ndjson").exists() and len((run / "timeseries.ndjson").read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    os.kill(status_of(run)["agent_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while status_of(run)["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    status = status_of(run)
    assert status["state"] == "failed"
    assert "signal 9" in status["message"] or "crash" in status["message"], status
    # What the crash leaves behind: whole lines of the live record, readable by the report.
    lines = (run / "timeseries.ndjson").read_text().splitlines()
    assert len(lines) >= 2 and all(json.loads(l)["t_s"] >= 0 for l in lines)
    assert "agent" in (run / "logs.txt").read_text()
    proc = ctl("status", run.name, check=None)
    assert "failed" in proc.stdout


def test_installed_tree_is_relocatable(tmp_path, testserver):
    prefix = tmp_path / "opt" / "userflux"
    subprocess.run(["cmake", "--install", str(BUILD), "--prefix", str(prefix)], check=True, capture_output=True)
    moved = tmp_path / "elsewhere"
    prefix.rename(moved)  # relocatable: nothing may refer to the install prefix
    for exe in ("userfluxctl", "userfluxd", "userflux-agent", "userflux-demo-gateway"):
        assert (moved / "bin" / exe).exists(), exe
    assert sorted(p.name for p in (moved / "lib" / "userflux" / "plugins").iterdir()) == [
        "libuserflux_protocol_http.so", "libuserflux_scenario_steps.so", "libuserflux_sink_file.so"]
    assert (moved / "share" / "userflux" / "schemas" / "summary.schema.json").exists()
    assert (moved / "share" / "userflux" / "examples" / "quickstart.json").exists()

    runs = tmp_path / "runs"
    env = dict(os.environ, USERFLUX_RUNS_DIR=str(runs), USERFLUX_PYTHON="/usr/bin/python3")
    env.pop("LD_LIBRARY_PATH", None)
    ctl = Ctl(runs)
    ctl.env = env

    def installed(*args):
        return subprocess.run([str(moved / "bin" / "userfluxctl"), *args], env=env, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)

    try:
        config = steps_config(testserver.url, {"model": "closed", "vus": 2, "iterations": 5},
                              [{"name": "ok", "path": "/ok"}])
        proc = installed("run", str(ctl.write_config(tmp_path, config)), "--follow", "--report")
        assert proc.returncode == 0, proc
        run = ctl.only_run()
        assert assert_contract(run)["totals"]["requests"] == 10
        assert (run / "report.html").exists()
        plugins = installed("plugins")
        assert plugins.returncode == 0 and plugins.stdout.count(" ok") >= 3, plugins
        # The daemon that ran it is the installed one.
        endpoint = json.loads((runs / ".userfluxd.json").read_text())
        assert os.readlink(f"/proc/{endpoint['pid']}/exe") == str(moved / "bin" / "userfluxd")
    finally:
        ctl.stop_daemon()


def test_ramp_down_is_honest(ctl, testserver, tmp_path):
    # 6 vUsers whose iterations take 700 ms ramp down to 0 over 1 s: those above the target finish their
    # iteration (no request is cut within graceful_stop) and are no longer counted as active vUsers.
    stages = [{"duration": "0s", "target": 6}, {"duration": "2s", "target": 6}, {"duration": "1s", "target": 0}]
    config = steps_config(testserver.url, {"model": "closed", "stages": stages, "graceful_stop": "3s"},
                          [{"name": "slow", "path": "/delay?ms=700"}])
    ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60, check=0)
    summary = assert_contract(ctl.only_run())

    def planned(t):
        return 6 if t < 2 else max(0.0, 6 - 6 * (t - 2))

    for b in summary["timeseries"]:
        top = max(planned(b["t_s"]), planned(min(b["t_s"] + b["duration_s"], 3.0) - 1e-6))
        assert b["vus"] <= math.ceil(top), (b, top)
    assert summary["totals"]["interrupted"] == 0
    assert summary["totals"]["requests"] == testserver.stats()["responses_completed"]
    assert summary["totals"]["vus_max"] == 6


def test_every_kind_of_check_counts_passes_and_fails_without_making_errors(ctl, testserver, tmp_path):
    steps = [
        {"name": "echo", "method": "POST", "path": "/echo", "json": {"a": {"b": 7}, "s": "x{{vu}}"},
         "checks": [
             {"status": 200},                                   # pass
             {"status": [404, 500]},                            # fail
             {"header": "Content-Type", "equals": "application/json"},  # pass
             {"header": "Content-Type", "contains": "json"},    # pass
             {"header": "X-Missing"},                           # fail
             {"body_contains": "\"a\""},                        # pass
             {"json": "/a/b", "equals": 7},                     # pass
             {"json": "/a/b", "equals": 8},                     # fail
             {"json": "/s", "equals": "x{{vu}}"},               # pass (templated)
             {"json": "/a/c", "exists": False},                 # pass
             {"json": "/a/c"},                                  # fail
             {"latency_below": "5s", "name": "fast enough"},    # pass
         ]},
        {"name": "slow", "path": "/delay?ms=300", "checks": [{"latency_below": "100ms"}]},  # fail
    ]
    config = steps_config(testserver.url, {"model": "closed", "vus": 2, "iterations": 5}, steps,
                          thresholds={"checks": ["rate > 0.5"]})
    ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60, check=0)
    summary = assert_contract(ctl.only_run())
    checks = {(c["step"], c["name"]): (c["passes"], c["fails"]) for c in summary["checks"]}
    expected_fail = {("echo", "status in [404, 500]"), ("echo", "header X-Missing present"),
                     ("echo", "json /a/b == 8"), ("echo", "json /a/c exists"), ("slow", "latency < 100ms")}
    assert len(checks) == 13, checks
    for key, (passes, fails) in checks.items():
        assert (passes, fails) == ((0, 10) if key in expected_fail else (10, 0)), (key, passes, fails)
    assert ("echo", "fast enough") in checks
    # Checks are counted on their own: no request became an error.
    assert summary["totals"]["errors"] == 0 and summary["totals"]["ok"] == 20
    assert summary["thresholds"][0]["observed"] == round(80 / 130, 3)


def test_expect_status_and_connect_timeout(ctl, testserver, tmp_path):
    import socket
    # A listener that never accepts, its backlog already full: the kernel drops further SYNs, so a connection
    # can never be established and the deadline expires while connecting.
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(blackhole.getsockname())
        fillers.append(s)
    time.sleep(0.2)
    try:
        port = blackhole.getsockname()[1]
        steps = [{"name": "gone", "path": "/status/404", "expect_status": [404]},
                 {"name": "hole", "path": f"http://127.0.0.1:{port}/"}]
        config = steps_config(testserver.url, {"model": "closed", "vus": 1, "iterations": 2}, steps)
        config["target"]["timeout"] = "500ms"
        ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60, check=0)
        summary = assert_contract(ctl.only_run())
    finally:
        for s in fillers:
            s.close()
        blackhole.close()
    endpoints = {e["name"]: e for e in summary["endpoints"]}
    assert endpoints["gone"]["ok"] == 2 and endpoints["gone"]["errors"] == 0   # 404 was expected
    assert endpoints["hole"]["errors"] == 2
    assert summary["errors_by_kind"]["connect_timeout"] == 2, summary["errors_by_kind"]
    assert all(500 <= e["latency_ms"]["max"] < 900 for e in [endpoints["hole"]])


def test_csv_rows_per_vuser(ctl, testserver, tmp_path):
    (tmp_path / "users.csv").write_text("user,password\nalice,a1\nbob,\"b,2\"\ncarol,c3\n")
    steps = [{"name": "login", "method": "POST", "path": "/echo",
              "json": {"user": "{{row.user}}", "password": "{{row.password}}", "vu": "{{vu}}"},
              "checks": [{"json": "/user", "equals": "{{row.user}}"}, {"json": "/vu", "equals": "{{vu}}"}],
              "extract": {"who": "json:/user"}},
             {"name": "again", "method": "POST", "path": "/echo", "body": "{{who}}/{{row.password}}",
              "checks": [{"body_contains": "{{row.user}}/{{row.password}}"}]}]
    config = steps_config(testserver.url, {"model": "closed", "vus": 3, "iterations": 4}, steps)
    config["scenario"]["data"] = {"csv": "users.csv", "mode": "per-vu"}
    ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60, check=0)
    run = ctl.only_run()
    summary = assert_contract(run)
    # The data file was copied into the run dir: the run dir is self-contained.
    assert (run / "users.csv").read_text() == (tmp_path / "users.csv").read_text()
    assert all(c["fails"] == 0 and c["passes"] == 12 for c in summary["checks"]), summary["checks"]


def test_every_example_config_validates(ctl):
    for example in sorted((REPO / "resources" / "examples").glob("*.json")):
        proc = ctl("validate", str(example), timeout=60)
        assert proc.returncode == 0, (example.name, proc.stdout, proc.stderr)
        assert "config ok" in proc.stdout
