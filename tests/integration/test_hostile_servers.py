"""Hostile servers (issue 3, "A scriptable test server"): each way a real server misbehaves, run end to end
(userfluxctl -> userfluxd -> userflux-agent) against the scriptable loopback server, asserting the exact values:
our counts equal the server's own counters from /__stats (requests + engine re-sends = what it received)."""
import json
import math
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import assert_contract, http_json, status_of
from test_end_to_end import steps_config

MiB = 1024 * 1024


# --- helpers -------------------------------------------------------------------------------------------------

def port_of(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def reset(server):
    http_json(port_of(server), "/__reset", method="POST")


def run_to_end(ctl, tmp_path, config, server, name="config.json", timeout=60):
    """Zeroes the server's counters (the fixture's own port probe is not ours), runs a config with --follow to its
    end, checks the whole contract, returns (run dir, summary)."""
    reset(server)
    before = {d.name for d in ctl.runs.iterdir() if d.is_dir()} if ctl.runs.exists() else set()
    ctl("run", str(ctl.write_config(tmp_path, config, name)), "--follow", timeout=timeout, check=0)
    new = [d for d in ctl.runs.iterdir() if d.is_dir() and d.name not in before]
    assert len(new) == 1, new
    run = new[0]
    summary = assert_contract(run)
    assert summary["final"] is True
    assert status_of(run)["state"] == "finished"
    return run, summary


def samples_of(run: Path):
    text = (run / "samples.ndjson").read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def kinds(summary):
    """errors_by_kind without the zeros."""
    return {k: v for k, v in summary["errors_by_kind"].items() if v}


def assert_requests_equal_server(summary, stats):
    """What we sent, counting the engine's own re-sends, is exactly what the server received."""
    t = summary["totals"]
    assert t["requests"] + t["retries"] == stats["requests_received"], (t, stats)


# --- 1. body framed by connection close ----------------------------------------------------------------------

def test_close_delimited_bodies(ctl, testserver, tmp_path):
    body = 1000
    config = steps_config(testserver.url, {"model": "closed", "vus": 2, "iterations": 50},
                          [{"name": "closed", "path": f"/close-delimited?bytes={body}"}])
    run, summary = run_to_end(ctl, tmp_path, config, testserver)
    stats = testserver.stats()
    t = summary["totals"]
    assert t["requests"] == t["ok"] == 100
    assert t["errors"] == 0 and t["interrupted"] == 0 and t["retries"] == 0
    assert summary["status_codes"] == {"200": 100}
    assert stats["requests_received"] == stats["responses_completed"] == 100
    assert_requests_equal_server(summary, stats)
    # Connection: close on every response: one connection per request.
    assert stats["connections_accepted"] == stats["connections_with_requests"] == 100
    # The whole body, framed by the close, arrives every time.
    assert stats["body_bytes_written"] == 100 * body
    assert t["bytes_received"] == 100 * body
    assert all(s["bytes_received"] == body and s["outcome"] == "ok" for s in samples_of(run))


# --- 2. chunked bodies on keep-alive -------------------------------------------------------------------------

@pytest.mark.parametrize("last_delay_ms", [0, 50])
def test_chunked_bodies_on_keep_alive(ctl, testserver, tmp_path, last_delay_ms):
    config = steps_config(testserver.url, {"model": "closed", "vus": 1, "iterations": 50},
                          [{"name": "chunked",
                            "path": f"/chunked?chunks=3&chunk_bytes=10&last_delay_ms={last_delay_ms}"}])
    run, summary = run_to_end(ctl, tmp_path, config, testserver)
    stats = testserver.stats()
    t = summary["totals"]
    assert t["requests"] == t["ok"] == 50 and t["errors"] == 0 and t["interrupted"] == 0
    assert stats["requests_received"] == stats["responses_completed"] == 50
    assert_requests_equal_server(summary, stats)
    # Keep-alive: the one vUser keeps one connection for all 50 requests.
    assert stats["connections_accepted"] == stats["connections_with_requests"] == 1
    assert t["bytes_received"] == stats["body_bytes_written"] == 50 * 30
    samples = samples_of(run)
    assert len(samples) == 50
    if last_delay_ms:
        # The request ends with the late last chunk, not before it; and far below the 5 s timeout.
        assert all(50 <= s["latency_ms"] < 500 for s in samples), sorted(s["latency_ms"] for s in samples)
        assert summary["latency_ms"]["min"] >= 50
        assert summary["latency_ms"]["max"] < 500
    else:
        assert summary["latency_ms"]["p99"] < 500


# --- 3. Connection: close on every 5th response --------------------------------------------------------------

def test_close_on_every_fifth_response(ctl, testserver, tmp_path):
    config = steps_config(testserver.url, {"model": "closed", "vus": 2, "iterations": 50},
                          [{"name": "every5", "path": "/close-every?n=5"}])
    run, summary = run_to_end(ctl, tmp_path, config, testserver)
    stats = testserver.stats()
    t = summary["totals"]
    assert t["requests"] == t["ok"] == 100 and t["errors"] == 0 and t["interrupted"] == 0
    assert summary["status_codes"] == {"200": 100}
    # Nothing was sent on a connection after its close response: a request written there would never have been
    # answered (an error, or an engine re-send counted in retries, and one request more at the server). The
    # server received exactly our 100 requests, 5 on each of 2 x 50 / 5 = 20 connections, and answered them all.
    assert t["retries"] == 0
    assert stats["requests_received"] == stats["responses_completed"] == 100
    assert_requests_equal_server(summary, stats)
    assert stats["connections_accepted"] == stats["connections_with_requests"] == 20
    assert stats["responses_broken"] == 0 and stats["client_gone"] == 0
    assert stats["core"]["protocol_errors"] == 0
    # No bytes after a close response: exactly one "ok" per request.
    assert t["bytes_received"] == stats["body_bytes_written"] == 100 * 2


# --- 4. bodiless responses with misleading lengths -----------------------------------------------------------

def test_bodiless_responses_do_not_wait_for_a_body(ctl, testserver, tmp_path):
    steps = [{"name": "head", "method": "HEAD", "path": "/head-length?bytes=1048576"},
             {"name": "no_content", "path": "/no-content"},
             {"name": "not_modified", "path": "/not-modified"}]
    config = steps_config(testserver.url, {"model": "closed", "vus": 1, "iterations": 50}, steps)
    run, summary = run_to_end(ctl, tmp_path, config, testserver)
    stats = testserver.stats()
    t = summary["totals"]
    assert t["requests"] == t["ok"] == 150 and t["errors"] == 0 and t["interrupted"] == 0
    assert summary["errors_by_kind"]["timeout"] == 0
    assert summary["status_codes"] == {"200": 50, "204": 50, "304": 50}
    assert {e["name"]: (e["requests"], e["ok"]) for e in summary["endpoints"]} == {
        "head": (50, 50), "no_content": (50, 50), "not_modified": (50, 50)}
    assert stats["requests_received"] == stats["responses_completed"] == 150
    assert_requests_equal_server(summary, stats)
    assert stats["requests_by_path"] == {"/head-length": 50, "/no-content": 50, "/not-modified": 50}
    # No body bytes, whatever Content-Length said.
    assert stats["body_bytes_written"] == 0
    assert t["bytes_received"] == 0
    # The timeout is 5 s: nothing waited for a body that never comes.
    assert summary["latency_ms"]["p99"] < 250
    assert summary["latency_ms"]["max"] < 1000


# --- 6. percentiles of ten known latencies -------------------------------------------------------------------

def test_percentiles_of_ten_known_latencies(ctl, testserver, tmp_path):
    config = steps_config(testserver.url, {"model": "closed", "vus": 1, "iterations": 10},
                          [{"name": "seq", "path": "/sleep-seq?start_ms=10&step_ms=10&max_ms=100"}])
    run, summary = run_to_end(ctl, tmp_path, config, testserver)
    stats = testserver.stats()
    assert summary["totals"]["requests"] == summary["totals"]["ok"] == 10 == stats["responses_completed"]
    assert_requests_equal_server(summary, stats)
    lat = summary["latency_ms"]
    names = ["min", "p50", "p75", "p90", "p95", "p99", "p99_9", "max"]
    for name in names + ["mean"]:
        assert math.isfinite(lat[name]) and lat[name] > 0, (name, lat)
    for name in names:
        assert lat[name] <= lat["max"], (name, lat)
    assert lat["count"] == 10
    assert 10 <= lat["min"] < 20
    assert 50 <= lat["p50"] <= 60, lat
    assert lat["p90"] >= 90, lat
    assert 100 <= lat["max"] < 150, lat
    # p99 (and p99.9) is the largest value: equal to max within the histogram's 3 significant digits.
    assert math.isclose(lat["p99"], lat["max"], rel_tol=1e-3), lat
    assert math.isclose(lat["p99_9"], lat["max"], rel_tol=1e-3), lat
    # The same in the endpoint's block.
    ep = summary["endpoints"][0]["latency_ms"]
    assert 50 <= ep["p50"] <= 60 and ep["p90"] >= 90 and math.isclose(ep["p99"], ep["max"], rel_tol=1e-3)
    # And each request's own latency is at least what the server slept.
    samples = samples_of(run)
    assert sorted(s["latency_ms"] for s in samples)[0] >= 10
    assert all(s["latency_ms"] >= 10 * (i + 1) for i, s in enumerate(sorted(samples, key=lambda s: s["iter"])))


# --- 7. timeouts at their real elapsed time ------------------------------------------------------------------

def test_timeouts_recorded_at_their_real_elapsed_time(ctl, testserver, tmp_path):
    config = steps_config(testserver.url, {"model": "closed", "vus": 1, "iterations": 5},
                          [{"name": "slow", "path": "/delay?ms=10000"}])
    config["target"]["timeout"] = "1s"
    run, summary = run_to_end(ctl, tmp_path, config, testserver)
    stats = testserver.stats()
    t = summary["totals"]
    assert t["requests"] == t["errors"] == 5 and t["ok"] == 0 and t["interrupted"] == 0
    assert kinds(summary) == {"timeout": 5}
    assert t["error_rate"] == 1.0
    assert summary["status_codes"] == {}
    assert stats["requests_received"] == 5
    assert stats["responses_completed"] == 0
    assert_requests_equal_server(summary, stats)
    lat = summary["latency_ms"]
    assert lat["count"] == 5
    assert 1000 <= lat["min"] and lat["max"] <= 1100, lat
    samples = samples_of(run)
    assert len(samples) == 5
    assert all(s["outcome"] == "error" and s["error"] == "timeout" and s["status"] is None for s in samples)
    assert all(1000 <= s["latency_ms"] <= 1100 for s in samples), [s["latency_ms"] for s in samples]
    # 5 sequential timeouts of 1 s: the run lasts about 5 s, not 50.
    assert 5 <= summary["run"]["duration_s"] < 8


# --- 8. graceful_stop against 300 ms responses ---------------------------------------------------------------

@pytest.mark.parametrize("graceful", ["1s", "0s"])
def test_graceful_stop_against_slow_responses(ctl, testserver, tmp_path, graceful):
    load = {"model": "closed", "stages": [{"duration": "0s", "target": 10}, {"duration": "3s", "target": 10}],
            "graceful_stop": graceful}
    config = steps_config(testserver.url, load, [{"name": "slow", "path": "/delay?ms=300"}])
    run, summary = run_to_end(ctl, tmp_path, config, testserver)
    time.sleep(0.5)  # let the server finish (or give up) what was cut
    stats = testserver.stats()
    t = summary["totals"]
    assert t["requests"] == t["ok"] + t["errors"] + t["interrupted"]
    assert t["errors"] == 0
    assert t["vus_max"] == 10
    assert_requests_equal_server(summary, stats)
    assert len(samples_of(run)) == t["requests"]
    # 10 vUsers x 3 s / 300 ms: about 100 requests.
    assert 80 <= t["requests"] <= 110, t
    if graceful == "1s":
        # Every vUser finishes its iteration: nothing is cut, and our totals are exactly the server's completions.
        assert t["interrupted"] == 0
        assert t["requests"] == t["ok"] == stats["responses_completed"] == stats["requests_received"]
        assert stats["client_gone"] == 0
    else:
        # Cut at once: at most one request per vUser, each one the server never got to answer to us.
        assert 1 <= t["interrupted"] <= 10
        assert t["ok"] <= stats["responses_completed"]
        assert t["ok"] + t["interrupted"] == stats["requests_received"]
        assert summary["endpoints"][0]["interrupted"] == t["interrupted"]
        assert summary["latency_ms"]["count"] == t["ok"]
        assert sum(1 for s in samples_of(run) if s["outcome"] == "interrupted") == t["interrupted"]
        assert summary["run"]["duration_s"] < 3.5


# --- 9. every response a 400 after 20 ms ---------------------------------------------------------------------

def test_every_response_is_a_400(ctl, testserver, tmp_path):
    config = steps_config(testserver.url, {"model": "closed", "vus": 2, "iterations": 25},
                          [{"name": "bad", "path": "/status/400?delay_ms=20"}])
    run, summary = run_to_end(ctl, tmp_path, config, testserver)
    stats = testserver.stats()
    t = summary["totals"]
    assert t["requests"] == t["errors"] == 50 and t["ok"] == 0 and t["interrupted"] == 0
    assert t["error_rate"] == 1.0
    assert kinds(summary) == {"http_status": 50}
    assert summary["status_codes"] == {"400": 50}
    assert stats["requests_received"] == stats["responses_completed"] == 50
    assert_requests_equal_server(summary, stats)
    assert stats["connections_accepted"] == 2  # a 400 is a response, not a broken connection
    lat = summary["latency_ms"]
    assert lat["count"] == 50
    assert all(math.isfinite(lat[k]) for k in lat)
    assert 20 <= lat["min"] and lat["p50"] < 60 and lat["max"] < 500, lat
    assert "latency_ok_ms" not in summary or summary["latency_ok_ms"].get("count", 0) == 0
    samples = samples_of(run)
    assert all(s["status"] == 400 and s["error"] == "http_status" and 20 <= s["latency_ms"] < 500 for s in samples)


# --- 10. resets mid-body -------------------------------------------------------------------------------------

def test_every_other_response_reset_mid_body(ctl, testserver, tmp_path):
    body = 10 * MiB
    config = steps_config(testserver.url, {"model": "closed", "vus": 1, "iterations": 10},
                          [{"name": "big", "path": f"/reset-after?bytes={body}&every=2&cut={MiB}"}])
    config["target"]["timeout"] = "10s"
    run, summary = run_to_end(ctl, tmp_path, config, testserver)
    stats = testserver.stats()
    t = summary["totals"]
    assert t["requests"] == 10 and t["ok"] == 5 and t["errors"] == 5 and t["interrupted"] == 0
    assert kinds(summary) == {"reset": 5}
    assert summary["status_codes"] == {"200": 5}
    # The vUser survived every reset: all 10 iterations ran.
    assert t["iterations"] == 10
    assert stats["requests_received"] == 10
    assert stats["responses_completed"] == 5 and stats["responses_broken"] == 5
    assert_requests_equal_server(summary, stats)
    assert stats["body_bytes_written"] == 5 * body + 5 * MiB
    # 5 x 10 MiB + 5 x (at most) 1 MiB: about 55 MiB.
    assert 5 * body + 4 * MiB <= t["bytes_received"] <= 5 * body + 5 * MiB, t["bytes_received"] / MiB
    samples = sorted(samples_of(run), key=lambda s: s["iter"])
    assert [s["outcome"] for s in samples] == ["ok", "error"] * 5
    assert all(s["bytes_received"] == body for s in samples if s["outcome"] == "ok")
    assert all(s["error"] == "reset" and s["status"] is None for s in samples if s["outcome"] == "error")


# --- 11. redirect chains -------------------------------------------------------------------------------------

def test_redirect_chain_followed_hop_by_hop(ctl, testserver, tmp_path):
    config = steps_config(testserver.url, {"model": "closed", "vus": 1, "iterations": 10},
                          [{"name": "chain", "path": "/redirect?n=3"}])
    config["target"]["follow_redirects"] = True
    run, summary = run_to_end(ctl, tmp_path, config, testserver)
    stats = testserver.stats()
    t = summary["totals"]
    # Each hop is its own request: 3 redirects + the final 200, 10 times, none counted twice.
    assert t["requests"] == t["ok"] == 40 and t["errors"] == 0 and t["interrupted"] == 0
    assert t["iterations"] == 10
    assert summary["status_codes"] == {"302": 30, "200": 10}
    assert stats["requests_received"] == stats["responses_completed"] == 40
    assert stats["requests_by_path"] == {"/redirect": 30, "/ok": 10}
    assert_requests_equal_server(summary, stats)
    assert sum(e["requests"] for e in summary["endpoints"]) == 40
    samples = samples_of(run)
    assert len(samples) == 40
    assert sorted(s["status"] for s in samples) == [200] * 10 + [302] * 30

    # Redirects off: each iteration is one 302, which is a success, not an error.
    config["target"]["follow_redirects"] = False
    run, summary = run_to_end(ctl, tmp_path, config, testserver, name="off.json")
    stats = testserver.stats()
    t = summary["totals"]
    assert t["requests"] == t["ok"] == 10 and t["errors"] == 0
    assert summary["status_codes"] == {"302": 10}
    assert stats["requests_received"] == 10 and stats["requests_by_path"] == {"/redirect": 10}
    assert_requests_equal_server(summary, stats)


# --- 12. SIGINT ----------------------------------------------------------------------------------------------

def wait_running(ctl, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [d for d in ctl.runs.iterdir() if d.is_dir()] if ctl.runs.exists() else []
        if runs and (runs[0] / "status.json").exists():
            status = status_of(runs[0])
            if status.get("state") == "running" and status.get("agent_pid"):
                return runs[0], status["agent_pid"], time.monotonic()
        time.sleep(0.02)
    raise AssertionError("the run never started")


def process_gone(pid) -> bool:
    """The agent is not our child: it is gone once /proc has no live process (a zombie counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_gone(pid, timeout) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process_gone(pid):
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"the agent {pid} is still running {timeout} s later")


@pytest.mark.parametrize("sigints,delay_ms,graceful_s", [(1, 200, 2), (1, 10000, 1), (2, 10000, 5)],
                         ids=["one-sigint-short-requests", "one-sigint-cut-requests", "two-sigints"])
def test_sigint_to_the_agent(ctl, testserver, tmp_path, sigints, delay_ms, graceful_s):
    vus = 4
    load = {"model": "closed", "stages": [{"duration": "0s", "target": vus}, {"duration": "60s", "target": vus}],
            "graceful_stop": f"{graceful_s}s"}
    config = steps_config(testserver.url, load, [{"name": "slow", "path": f"/delay?ms={delay_ms}"}])
    config["target"]["timeout"] = "30s"
    reset(testserver)
    follower = ctl.popen("run", str(ctl.write_config(tmp_path, config)), "--follow")
    try:
        run, pid, started = wait_running(ctl)
        time.sleep(max(0.0, started + 3.0 - time.monotonic()))  # 3 s into the run
        sent = time.monotonic()
        os.kill(pid, signal.SIGINT)
        if sigints == 2:
            time.sleep(0.1)
            os.kill(pid, signal.SIGINT)
        gone = wait_gone(pid, graceful_s + 5)
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
    stopped_after = gone - sent
    assert follower.returncode == 130, (out, err)
    assert stopped_after < graceful_s + 1, stopped_after
    status = status_of(run)
    assert status["state"] == "aborted" and status["exit_code"] == 130
    summary = assert_contract(run)
    assert summary["final"] is True and summary["run"]["state"] == "aborted"
    t = summary["totals"]
    assert t["requests"] == t["ok"] + t["errors"] + t["interrupted"]
    assert t["errors"] == 0
    # The run stopped about 3 s in, not at 60 s.
    assert 3 <= summary["run"]["duration_s"] < 3 + graceful_s + 1
    # The record is whole: samples end on a whole line, one per request of the summary.
    text = (run / "samples.ndjson").read_text()
    assert text.endswith("\n")
    samples = [json.loads(line) for line in text.splitlines()]
    assert len(samples) == t["requests"]
    assert sum(1 for s in samples if s["outcome"] == "interrupted") == t["interrupted"]
    time.sleep(0.2)
    stats = testserver.stats()
    assert_requests_equal_server(summary, stats)
    assert t["ok"] <= stats["responses_completed"]
    if delay_ms == 200:
        # Requests of 200 ms end well within graceful_stop: none is cut.
        assert t["interrupted"] == 0 and t["ok"] > 0
        assert stopped_after < 1.0, stopped_after
    elif sigints == 1:
        # 10 s requests outlive graceful_stop (1 s): every vUser's request is cut when it expires.
        assert t["ok"] == 0 and t["interrupted"] == vus
        assert graceful_s - 0.1 <= stopped_after, stopped_after
    else:
        # The second SIGINT stops at once: no waiting for the 5 s graceful_stop.
        assert t["ok"] == 0 and t["interrupted"] == vus
        assert stopped_after < 1.5, stopped_after
