#!/usr/bin/env bash
# Throughput of Userflux against wrk on the same nginx (HTTP/1.1 keep-alive, loopback), measured in one run.
# Usage: bench/http1-nginx.sh [build dir (default build/release)] [seconds (default 10)] [connections (default 50)]
# Prints requests/s of each and the ratio. Needs nginx and wrk (apt-get install nginx-light wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/release}"
seconds="${2:-10}"
conns="${3:-50}"
command -v wrk >/dev/null || { echo "bench: wrk is not installed (apt-get install wrk)" >&2; exit 3; }
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

work="$(mktemp -d)"
trap 'kill "$nginx_pid" 2>/dev/null || true; [[ -n "${USERFLUX_RUNS_DIR:-}" && -f "$USERFLUX_RUNS_DIR/.userfluxd.json" ]] && kill "$(python3 -c "import json;print(json.load(open(\"$USERFLUX_RUNS_DIR/.userfluxd.json\"))[\"pid\"])")" 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/logs"
cat > "$work/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $work/nginx.pid; error_log $work/logs/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  server { listen 127.0.0.1:$port; location / { return 200 "ok\n"; } } }
CONF
"$nginx_bin" -c "$work/nginx.conf" -p "$work" & nginx_pid=$!
sleep 0.5

wrk_rps=$(wrk -t1 -c"$conns" -d"${seconds}s" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}')

export USERFLUX_RUNS_DIR="$work/runs"
cat > "$work/bench.json" <<JSON
{ "name": "bench-http1", "target": { "base_url": "http://127.0.0.1:$port", "timeout": "5s" },
  "load": { "model": "closed", "stages": [ { "duration": "0s", "target": $conns }, { "duration": "${seconds}s", "target": $conns } ],
            "graceful_stop": "2s" },
  "scenario": { "plugin": "steps", "steps": [ { "name": "home", "path": "/" } ] } }
JSON
"$build/bin/userfluxctl" run "$work/bench.json" --follow > "$work/ctl.log"
run_dir=$(ls -d "$USERFLUX_RUNS_DIR"/*/ | head -1)
uf_rps=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['totals']['throughput_rps'])" "$run_dir/summary.json")

printf 'bench http1-nginx: %s connections/vUsers, %s s, loopback nginx\n' "$conns" "$seconds"
printf '  wrk -t1          %10.0f req/s\n' "$wrk_rps"
printf '  userflux         %10.0f req/s\n' "$uf_rps"
python3 -c "print(f'  ratio userflux/wrk: {float($uf_rps)/float($wrk_rps):.3f}')"
