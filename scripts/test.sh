#!/usr/bin/env bash
# The whole test suite: installs what is missing (build and test packages), builds, and runs every test
# (Qt Test units, the analytics pytest suite and the end-to-end pytest suite) through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
scripts/build.sh release
ctest --preset release --output-on-failure -j2
