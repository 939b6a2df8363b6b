"""HTTP versions and TLS through the QNAM engine, judged by nginx: HTTP/2 over TLS by ALPN, cleartext h2c by
prior knowledge, HTTP/1.1 on request, and certificate verification."""
from conftest import assert_contract
from test_end_to_end import steps_config


def run(ctl, tmp_path, config, name):
    ctl("run", str(ctl.write_config(tmp_path, config, name)), "--follow", timeout=60, check=0)
    runs = sorted((d for d in ctl.runs.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime)
    return assert_contract(runs[-1])


def port_of(url):
    return int(url.rsplit(":", 1)[1])


def test_http2_over_tls_by_alpn(ctl, nginx_h2, tmp_path):
    config = steps_config(nginx_h2.https_url, {"model": "closed", "vus": 3, "iterations": 10},
                          [{"name": "home", "path": "/"}])
    config["target"]["tls"] = {"ca_file": nginx_h2.ca_file}
    summary = run(ctl, tmp_path, config, "h2.json")
    assert summary["totals"]["ok"] == 30
    assert summary["protocols"] == {"h2": 30}
    assert nginx_h2.protocols() == {(port_of(nginx_h2.https_url), "HTTP/2.0"): 30}


def test_http11_on_request_over_tls(ctl, nginx_h2, tmp_path):
    config = steps_config(nginx_h2.https_url, {"model": "closed", "vus": 2, "iterations": 5},
                          [{"name": "home", "path": "/"}])
    config["target"]["tls"] = {"ca_file": nginx_h2.ca_file}
    config["target"]["http_version"] = "1.1"
    summary = run(ctl, tmp_path, config, "h11.json")
    assert summary["protocols"] == {"http/1.1": 10}
    assert nginx_h2.protocols() == {(port_of(nginx_h2.https_url), "HTTP/1.1"): 10}


def test_cleartext_h2c_by_prior_knowledge(ctl, nginx_h2, tmp_path):
    config = steps_config(nginx_h2.h2c_url, {"model": "closed", "vus": 2, "iterations": 10},
                          [{"name": "home", "path": "/"}])
    config["target"]["http_version"] = "h2c"
    summary = run(ctl, tmp_path, config, "h2c.json")
    assert summary["totals"]["ok"] == 20
    assert summary["protocols"] == {"h2": 20}
    assert nginx_h2.protocols() == {(port_of(nginx_h2.h2c_url), "HTTP/2.0"): 20}


def test_untrusted_certificate_is_a_tls_error_unless_verification_is_off(ctl, nginx_h2, tmp_path):
    config = steps_config(nginx_h2.https_url, {"model": "closed", "vus": 1, "iterations": 4},
                          [{"name": "home", "path": "/"}])
    summary = run(ctl, tmp_path, config, "untrusted.json")
    assert summary["errors_by_kind"]["tls"] == 4 and summary["totals"]["errors"] == 4
    assert nginx_h2.protocols() == {}
    config["target"]["tls"] = {"verify": False}
    summary = run(ctl, tmp_path, config, "noverify.json")
    assert summary["totals"]["ok"] == 4


def test_https_http11_spreads_vusers_over_enough_connections(ctl, nginx_h2, tmp_path):
    # QNAM opens at most 6 HTTP/1.1 connections per host per manager: 24 vUsers starting together need 4 managers
    # to get a connection each instead of queueing behind 6.
    config = steps_config(nginx_h2.https_url, {"model": "closed", "vus": 24, "iterations": 3, "workers": 1},
                          [{"name": "home", "path": "/"}])
    config["target"]["tls"] = {"ca_file": nginx_h2.ca_file}
    config["target"]["http_version"] = "1.1"
    summary = run(ctl, tmp_path, config, "many.json")
    assert summary["totals"]["ok"] == 72 and summary["protocols"] == {"http/1.1": 72}
    assert nginx_h2.connections() > 6, nginx_h2.connections()
