#!/usr/bin/env bash
# Installs the Debian 12 packages Userflux needs to build, run, test and report, only those missing.
# Idempotent; uses sudo when not root. Usage: scripts/setup.sh [--tests]
set -euo pipefail

packages=(
  # build
  cmake g++ ninja-build pkg-config
  qt6-base-dev qt6-charts-dev libqt6opengl6-dev qcoro-qt6-dev nlohmann-json3-dev
  libgl-dev libegl-dev libopengl-dev libglx-dev libvulkan-dev libxkbcommon-dev
  # reports
  python3 python3-matplotlib python3-numpy
  # the quick start probes the demo gateway
  curl
)
if [[ "${1:-}" == "--tests" ]]; then
  packages+=(nginx-light openssl python3-pytest python3-jsonschema xvfb xauth)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} Debian packages already installed"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: not root and no sudo; install: ${missing[*]}" >&2; exit 3; }
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
