"""The open (arrival-rate) model: iterations on a schedule, dropped iterations, and latency corrected for
coordinated omission; plus the server freeze of issue 3 item 5 in both models."""
import json
import time

from conftest import assert_contract
from test_end_to_end import steps_config


def open_load(rate, duration, max_vus, graceful="3s"):
    return {"model": "open", "stages": [{"duration": duration, "rate": rate}], "max_vus": max_vus,
            "graceful_stop": graceful}


def test_constant_rate_starts_every_iteration_on_schedule(ctl, testserver, tmp_path):
    config = steps_config(testserver.url, open_load(200, "5s", 20), [{"name": "d", "path": "/delay?ms=10"}])
    ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60, check=0)
    summary = assert_contract(ctl.only_run())
    totals = summary["totals"]
    assert abs(totals["iterations"] - 1000) <= 10, totals
    assert totals["dropped_iterations"] == 0
    assert totals["requests"] == totals["iterations"] == testserver.stats()["responses_completed"]
    assert summary["run"]["model"] == "open"
    # Never in bursts: every whole second of the plan starts ~200 iterations.
    per_second = [b["requests"] for b in summary["timeseries"] if b["t_s"] < 5]
    assert all(190 <= n <= 210 for n in per_second), per_second
    # Nothing was late, so the corrected latency is the raw one.
    assert summary["latency_corrected_ms"]["count"] == summary["latency_ms"]["count"]
    assert summary["latency_corrected_ms"]["p99"] < 60


def test_busy_pool_drops_iterations(ctl, testserver, tmp_path):
    # 10/s for 3 s = 30 due; 2 vUsers each busy 1 s can start only 2 per second: 6 start, 24 are dropped.
    config = steps_config(testserver.url, open_load(10, "3s", 2), [{"name": "slow", "path": "/delay?ms=1000"}])
    ctl("run", str(ctl.write_config(tmp_path, config)), "--follow", timeout=60, check=0)
    summary = assert_contract(ctl.only_run())
    totals = summary["totals"]
    assert totals["iterations"] + totals["dropped_iterations"] == 30
    assert totals["iterations"] == 6 and totals["dropped_iterations"] == 24, totals
    assert sum(b["dropped_iterations"] for b in summary["timeseries"]) == 24
    assert totals["requests"] == testserver.stats()["responses_completed"] == 6
    # What the drops hide, the corrected latency shows: more samples, most of them shorter than a 1 s response
    # but all of them there.
    assert summary["latency_corrected_ms"]["count"] > summary["latency_ms"]["count"]


def freeze_config(url, load):
    return steps_config(url, load, [{"name": "f", "path": "/freeze?at_ms=2000&for_ms=2000"}])


def test_freeze_in_the_closed_model(ctl, testserver, tmp_path):
    load = {"model": "closed", "stages": [{"duration": "0s", "target": 1}, {"duration": "6s", "target": 1}],
            "graceful_stop": "3s"}
    ctl("run", str(ctl.write_config(tmp_path, freeze_config(testserver.url, load))), "--follow", timeout=60, check=0)
    summary = assert_contract(ctl.only_run())
    latency = summary["latency_ms"]
    assert 1900 <= latency["max"] <= 2300, latency
    assert latency["p50"] < 20 and latency["p99"] < 50, latency
    samples = [json.loads(l) for l in (ctl.only_run() / "samples.ndjson").read_text().splitlines()]
    assert sum(1 for s in samples if s["latency_ms"] > 100) == 1
    # The frozen second shows zero completions.
    by_second = {b["t_s"]: b["requests"] for b in summary["timeseries"]}
    assert by_second[3] == 0, by_second
    assert summary["totals"]["requests"] == testserver.stats()["responses_completed"]


def test_freeze_in_the_open_model_shows_in_the_corrected_latency(ctl, testserver, tmp_path):
    # One vUser at 100/s: during the 2 s freeze its request waits and ~200 iterations find no free vUser.
    ctl("run", str(ctl.write_config(tmp_path, freeze_config(testserver.url, open_load(100, "6s", 1)))), "--follow",
        timeout=60, check=0)
    summary = assert_contract(ctl.only_run())
    raw, corrected = summary["latency_ms"], summary["latency_corrected_ms"]
    assert 1900 <= raw["max"] <= 2300
    assert raw["p99"] < 100, raw                    # one slow request among hundreds
    assert corrected["p90"] > 500, corrected        # the users the freeze kept waiting
    assert corrected["p99"] > 1500, corrected
    assert summary["totals"]["dropped_iterations"] >= 150
