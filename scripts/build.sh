#!/usr/bin/env bash
# Configures and builds Userflux with a CMake preset. Usage: scripts/build.sh [preset] [--product]
#   preset     dev | release (default) | asan
#   --product  build only what a user runs (executables and plugins), not the tests
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
cmake --preset "$preset" >/dev/null
if [[ "${2:-}" == "--product" ]]; then
  cmake --build --preset "$preset" -j"$(nproc)" --target userflux_product
else
  cmake --build --preset "$preset" -j"$(nproc)"
fi
