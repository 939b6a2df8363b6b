"""The report command: HTML and PNGs from the fixture run, partial and empty runs, exit codes."""

import struct

from conftest import read_json, run_cli, write_json

PNGS = ("throughput.png", "latency.png", "errors.png", "latency_hist.png")


def png_size(path):
    """(width, height) of a PNG file; fails when the file is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_pngs(folder, names=PNGS):
    for name in names:
        path = folder / name
        assert path.is_file(), f"{name} missing"
        assert path.stat().st_size > 5000, f"{name} is suspiciously small"
        w, h = png_size(path)
        assert 900 <= w <= 1400 and 350 <= h <= 600, f"{name} is {w}x{h}"


def test_report_of_fixture_run(run_copy):
    proc = run_cli("report", run_copy)
    assert proc.returncode == 0, proc.stderr
    report = run_copy / "report.html"
    assert proc.stdout.strip() == str(report.resolve())
    html = report.read_text(encoding="utf-8")
    for ep in read_json(run_copy / "summary.json")["endpoints"]:
        assert f"<td>{ep['name']}</td>" in html
    for name in PNGS:
        assert f'src="{name}"' in html
    for section in ("Thresholds", "Endpoints", "Status codes", "Errors by kind", "Server timing", "Checks",
                    "payments", "checkout-flow", "20261203-180102-4f2a"):
        assert section in html
    assert "http://" not in html.split("<body>")[0], "the page must not load external assets"
    assert_pngs(run_copy)


def test_report_out_dir_leaves_run_dir_alone(run_copy, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("report", run_copy, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.html").is_file()
    assert_pngs(out)
    assert not (run_copy / "report.html").exists()


def test_partial_run_uses_timeseries_ndjson_and_drops_torn_line(run_copy):
    summary = read_json(run_copy / "summary.json")
    summary["final"] = False
    for key in ("timeseries", "endpoints", "histogram", "checks", "thresholds", "server_timing"):
        del summary[key]
    write_json(run_copy / "summary.json", summary)
    (run_copy / "samples.ndjson").unlink()
    with open(run_copy / "timeseries.ndjson", "a", encoding="utf-8") as f:
        f.write('{"t_s": 21, "duration_s": 1, "vus": 10, "requ')  # a crash while appending
    proc = run_cli("report", run_copy)
    assert proc.returncode == 0, proc.stderr
    html = (run_copy / "report.html").read_text(encoding="utf-8")
    assert "partial" in html and "timeseries.ndjson" in html
    assert_pngs(run_copy, ("throughput.png", "latency.png", "errors.png"))
    assert not (run_copy / "latency_hist.png").exists()  # no histogram, no samples: no data


def test_minimal_summary_never_fails(tmp_path):
    run = tmp_path / "minimal"
    run.mkdir()
    write_json(run / "summary.json", {"schema": "userflux.summary/1", "run_id": "minimal", "final": False,
                                      "generated_at": "2026-12-03T18:01:02Z",
                                      "totals": {"requests": 3, "ok": 3, "errors": 0, "interrupted": 0}})
    proc = run_cli("report", run)
    assert proc.returncode == 0, proc.stderr
    assert "minimal" in (run / "report.html").read_text(encoding="utf-8")


def test_empty_run_gives_a_report_saying_so(empty_run):
    proc = run_cli("report", empty_run)
    assert proc.returncode == 0, proc.stderr
    html = (empty_run / "report.html").read_text(encoding="utf-8")
    assert "no requests" in html
    assert "no data for this chart" in html


def test_stale_charts_are_removed(empty_run):
    (empty_run / "latency.png").write_bytes(b"old")
    assert run_cli("report", empty_run).returncode == 0
    assert not (empty_run / "latency.png").exists()


def test_missing_summary_exits_2(tmp_path, run_copy):
    (run_copy / "summary.json").unlink()
    proc = run_cli("report", run_copy)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "summary.json" in proc.stderr
    assert not (run_copy / "report.html").exists()
    assert run_cli("report", tmp_path / "no-such-run").returncode == 2


def test_missing_matplotlib_exits_3(run_copy, tmp_path):
    fake = tmp_path / "fake-site"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    proc = run_cli("report", run_copy, pythonpath_first=fake)
    assert proc.returncode == 3
    assert len(proc.stderr.strip().splitlines()) == 1 and "matplotlib" in proc.stderr

