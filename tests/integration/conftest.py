"""Fixtures for the end-to-end tests: real userfluxctl -> userfluxd -> userflux-agent processes against real
servers on loopback (nginx from Debian, the bundled demo gateway, the scriptable test server).

The build tree comes from USERFLUX_BUILD_DIR (set by CTest), else <repo>/build/dev."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("USERFLUX_BUILD_DIR", REPO / "build" / "dev")).resolve()
BIN = BUILD / "bin"
sys.path.insert(0, str(REPO / "analytics"))

from userflux_analytics.contract import check_run  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def http_json(port: int, path: str, method: str = "GET"):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return json.loads(body) if body else None


class Ctl:
    """Runs userfluxctl against an isolated runs root."""

    def __init__(self, runs: Path):
        self.runs = runs
        self.env = dict(os.environ, USERFLUX_RUNS_DIR=str(runs), USERFLUX_PYTHON="/usr/bin/python3")
        self.env.pop("http_proxy", None)

    def __call__(self, *args, timeout=120, check=None):
        proc = subprocess.run([str(BIN / "userfluxctl"), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if check is not None and proc.returncode != check:
            raise AssertionError(f"userfluxctl {' '.join(args)} exited {proc.returncode}, expected {check}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def popen(self, *args):
        return subprocess.Popen([str(BIN / "userfluxctl"), *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    def only_run(self) -> Path:
        dirs = [d for d in self.runs.iterdir() if d.is_dir()]
        assert len(dirs) == 1, dirs
        return dirs[0]

    def write_config(self, tmp: Path, config: dict, name="config.json") -> Path:
        path = tmp / name
        path.write_text(json.dumps(config, indent=2))
        return path

    def stop_daemon(self):
        endpoint = self.runs / ".userfluxd.json"
        if endpoint.exists():
            try:
                pid = json.loads(endpoint.read_text())["pid"]
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.05)
            except (ProcessLookupError, KeyError, ValueError, OSError):
                pass


@pytest.fixture
def ctl(tmp_path):
    c = Ctl(tmp_path / "runs")
    yield c
    c.stop_daemon()


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def status_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def assert_contract(run_dir: Path) -> dict:
    """Schemas and every invariant of CONTRACT.md, on every summary the suite makes."""
    violations = check_run(run_dir)
    assert not violations, "\n".join(violations)
    return summary_of(run_dir)


def start_nginx(root: Path, http_block: str, ports):
    """Runs Debian's nginx in the foreground, single process, everything under `root`; `http_block` holds the
    log format/access log and server blocks. Returns the process once every port accepts."""
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(exe).exists():
        pytest.fail("nginx is not installed: run scripts/setup.sh --tests")
    (root / "logs").mkdir(parents=True)
    conf = root / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {root}/body; proxy_temp_path {root}/proxy; fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
    keepalive_requests 100000;
{http_block}
}}
""")
    proc = subprocess.Popen([exe, "-c", str(conf), "-p", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for port in ports:
            wait_for_port(port)
    except TimeoutError:
        proc.kill()
        raise AssertionError("nginx did not start: " + proc.stderr.read().decode())
    return proc


@pytest.fixture
def nginx(tmp_path):
    """nginx on a free loopback port answering 200 to everything, with an access log: the server's own count."""
    root = tmp_path / "nginx"
    port = free_port()
    proc = start_nginx(root, f"""
    access_log {root}/logs/access.log;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "hello from nginx\\n"; }}
    }}""", [port])

    class Nginx:
        url = f"http://127.0.0.1:{port}"
        access_log = root / "logs" / "access.log"

        def requests_logged(self) -> int:
            return len(self.access_log.read_text().splitlines()) if self.access_log.exists() else 0

    yield Nginx()
    proc.terminate()
    proc.wait(timeout=10)


def start_server(args, tmp_path, name):
    port_file = tmp_path / f"{name}.port"
    proc = subprocess.Popen([*args, "--port", "0", "--port-file", str(port_file)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 10
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{name} did not start: {proc.stdout.read()}")
        time.sleep(0.02)
    port = int(port_file.read_text().strip())
    wait_for_port(port)
    return proc, port


@pytest.fixture
def gateway_factory(tmp_path):
    procs = []

    def make(*extra):
        proc, port = start_server([str(BIN / "userflux-demo-gateway"), *extra], tmp_path, f"gateway{len(procs)}")
        procs.append(proc)
        return port

    yield make
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


@pytest.fixture
def testserver(tmp_path):
    """The scriptable loopback server (tests/testlib): its path chooses its behaviour, /__stats its counters."""
    proc, port = start_server([str(BIN / "userflux-testserver")], tmp_path, "testserver")

    class Server:
        url = f"http://127.0.0.1:{port}"

        def stats(self):
            return http_json(port, "/__stats")

    yield Server()
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def nginx_h2(tmp_path):
    """nginx serving HTTP/2 over TLS (ALPN, self-signed certificate for 127.0.0.1) and cleartext h2c, logging the
    protocol of every request."""
    root = tmp_path / "nginx-h2"
    root.mkdir()
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    tls_port, h2c_port = free_port(), free_port()
    proc = start_nginx(root, f"""
    log_format proto '$server_port $server_protocol $status $connection';
    access_log {root}/logs/access.log proto;
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ default_type text/plain; return 200 "hello over tls\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{h2c_port} http2;
        location / {{ default_type text/plain; return 200 "hello over h2c\\n"; }}
    }}""", [tls_port, h2c_port])

    class NginxH2:
        https_url = f"https://127.0.0.1:{tls_port}"
        h2c_url = f"http://127.0.0.1:{h2c_port}"
        ca_file = str(cert)
        access_log = root / "logs" / "access.log"

        def protocols(self):
            """{(port, protocol): count} from the access log."""
            counts = {}
            if self.access_log.exists():
                for line in self.access_log.read_text().splitlines():
                    port, proto, _, _ = line.split()
                    counts[(int(port), proto)] = counts.get((int(port), proto), 0) + 1
            return counts

        def connections(self):
            """Distinct connections that carried a request."""
            if not self.access_log.exists():
                return 0
            return len({line.split()[3] for line in self.access_log.read_text().splitlines()})

    yield NginxH2()
    proc.terminate()
    proc.wait(timeout=10)
