#!/usr/bin/env bash
# The quick start: installs what is missing, builds, starts the bundled demo gateway on 127.0.0.1:8080, runs
# resources/examples/quickstart.json through userfluxctl (which starts userfluxd on demand), follows it live and
# writes the HTML report. Results land in ./runs/<run_id>/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release --product
bin=build/release/bin

port=8080
gateway_pid=""
cleanup() { [[ -n "$gateway_pid" ]] && kill "$gateway_pid" 2>/dev/null || true; }
trap cleanup EXIT
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  if ! curl -fsS "http://127.0.0.1:$port/__gateway/stats" >/dev/null 2>&1; then
    echo "quickstart: 127.0.0.1:$port is taken by something that is not the demo gateway; free it and retry" >&2
    exit 3
  fi
  echo "quickstart: reusing the demo gateway already on 127.0.0.1:$port"
else
  "$bin/userflux-demo-gateway" --port "$port" --error-rate 0.01 --seed 42 &
  gateway_pid=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
fi

set +e
"$bin/userfluxctl" run resources/examples/quickstart.json --follow --report
code=$?
set -e
echo
echo "quickstart: userfluxctl exited $code (0 ok, 99 thresholds failed); every run is in ./runs/"
exit "$code"
