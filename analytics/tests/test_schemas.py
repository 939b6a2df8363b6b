"""The JSON Schemas themselves: well-formed, and config.schema.json accepts what people write and rejects typos."""

import copy
import json

import jsonschema
import pytest

from conftest import EXAMPLES_DIR, FIXTURE_RUN, SCHEMAS_DIR, read_json
from userflux_analytics.contract import SCHEMA_FILES, load_validators, schema_violations

EXAMPLES = sorted(EXAMPLES_DIR.glob("*.json"))
CONST = {"config.json": "userflux.config/1", "status.json": "userflux.status/1",
         "summary.json": "userflux.summary/1", "timeseries.ndjson": "userflux.timeseries/1",
         "samples.ndjson": "userflux.sample/1"}


@pytest.fixture(scope="module")
def config_validator():
    return load_validators(SCHEMAS_DIR)["config.json"]


def violations(validator, doc):
    return schema_violations(validator, doc, "config.json")


@pytest.mark.parametrize("artifact", sorted(SCHEMA_FILES))
def test_schema_is_well_formed(artifact):
    schema = read_json(SCHEMAS_DIR / SCHEMA_FILES[artifact])
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema"] == {"const": CONST[artifact]}


@pytest.mark.parametrize("example", EXAMPLES or [None], ids=[p.name for p in EXAMPLES] or ["no-examples"])
def test_example_configs_are_valid(example, config_validator):
    if example is None:
        pytest.skip("resources/examples has no *.json yet")
    assert violations(config_validator, json.loads(example.read_text(encoding="utf-8"))) == []


BASE = read_json(FIXTURE_RUN / "config.json")

VALID = {
    "fixture": lambda c: None,
    "minimal": lambda c: [c.pop(k) for k in ("schema", "name", "description", "protocol", "sinks", "thresholds")],
    "closed_iterations": lambda c: c.update(load={"model": "closed", "vus": 2, "iterations": 50,
                                                  "max_duration": "1m", "workers": 2}),
    "open": lambda c: c.update(load={"model": "open", "stages": [{"duration": "1m", "rate": 200}],
                                     "max_vus": 500, "graceful_stop": "5s"}),
    "compound_duration": lambda c: c["load"]["stages"][0].update(duration="1h30m"),
    "threshold_objects": lambda c: c.update(thresholds={
        "latency_ms{endpoint=login}": [{"expr": "p99 < 800", "abort_on_fail": True, "delay": "10s"}],
        "server_timing_ms{service=orders}": ["p95 < 100"], "checks": ["rate > 0.99"],
        "throughput_rps": [">= 100"]}),
    "body_and_expect": lambda c: c["scenario"]["steps"][1].update(body="a=1", method="PUT",
                                                                   expect_status=[200, 404], think_time="1s"),
    "header_extract": lambda c: c["scenario"]["steps"][0]["extract"].update(session="header:X-Session-Id"),
    "other_scenario_plugin": lambda c: c.update(scenario={"plugin": "lua", "script": "flow.lua"}),
    "protocol_options": lambda c: c.update(protocol={"plugin": "http", "connections": 4}),
    "h2c": lambda c: c["target"].update(http_version="h2c", max_redirects=3),
    "other_sink": lambda c: c["sinks"].append({"plugin": "influx", "url": "http://x"}),
}

INVALID = {
    "unknown_top_level": (lambda c: c.update(extra=1), "$: Additional properties"),
    "typo_in_target": (lambda c: c["target"].update(time_out="1s"), "$.target: Additional properties"),
    "typo_in_tls": (lambda c: c["target"]["tls"].update(verfy=False), "$.target.tls"),
    "bad_duration": (lambda c: c["target"].update(timeout="10 seconds"), "$.target.timeout"),
    "unitless_duration": (lambda c: c["load"].update(graceful_stop="10"), "$.load.graceful_stop"),
    "bad_range": (lambda c: c["scenario"].update(think_time="1s-2s"), "$.scenario.think_time"),
    "http_version": (lambda c: c["target"].update(http_version="3"), "$.target.http_version"),
    "base_url": (lambda c: c["target"].update(base_url="gateway:8080"), "$.target.base_url"),
    "stages_and_vus": (lambda c: c["load"].update(vus=3), "$.load"),
    "open_without_max_vus": (lambda c: c.update(load={"model": "open", "stages": [{"duration": "1m",
                                                                                   "rate": 5}]}), "$.load"),
    "unknown_model": (lambda c: c["load"].update(model="arrival"), "$.load"),
    "stage_typo": (lambda c: c["load"]["stages"][0].update(targt=3), "$.load.stages[0]"),
    "step_typo": (lambda c: c["scenario"]["steps"][0].update(metod="GET"), "$.scenario.steps[0]"),
    "json_and_body": (lambda c: c["scenario"]["steps"][0].update(body="x"), "$.scenario.steps[0]"),
    "missing_path": (lambda c: c["scenario"]["steps"][0].pop("path"), "'path' is a required property"),
    "lower_case_method": (lambda c: c["scenario"]["steps"][0].update(method="post"), "method"),
    "bad_extract": (lambda c: c["scenario"]["steps"][0]["extract"].update(t="xpath://a"), "extract.t"),
    "bad_check": (lambda c: c["scenario"]["steps"][0]["checks"].append({"stauts": 200}), "checks[1]"),
    "data_mode": (lambda c: c["scenario"]["data"].update(mode="shuffled"), "$.scenario.data.mode"),
    "steps_typo": (lambda c: c["scenario"].update(thinktime="1s"), "$.scenario"),
    "file_sink_typo": (lambda c: c["sinks"][0].update(sample=True), "$.sinks[0]"),
    "threshold_expr": (lambda c: c["thresholds"]["error_rate"].append("below 1%"), "$.thresholds.error_rate[1]"),
    "threshold_object_typo": (lambda c: c["thresholds"]["error_rate"].append({"expr": "< 1", "abort": True}),
                              "$.thresholds.error_rate[1]"),
    "threshold_metric": (lambda c: c["thresholds"].update({"Latency ms": ["< 1"]}), "$.thresholds"),
    "wrong_schema": (lambda c: c.update(schema="userflux.config/2"), "$.schema"),
    "missing_target": (lambda c: c.pop("target"), "'target' is a required property"),
}


@pytest.mark.parametrize("change", VALID.values(), ids=VALID.keys())
def test_config_accepts(change, config_validator):
    config = copy.deepcopy(BASE)
    change(config)
    assert violations(config_validator, config) == []


@pytest.mark.parametrize("change,where", INVALID.values(), ids=INVALID.keys())
def test_config_rejects_with_path(change, where, config_validator):
    config = copy.deepcopy(BASE)
    change(config)
    found = violations(config_validator, config)
    assert found and any(where in v for v in found), "\n".join(found)
