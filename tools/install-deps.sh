#!/usr/bin/env bash
# Installs moesim's build and test dependencies from Debian 12 packages.
# Idempotent: packages already present are not touched; apt-get runs only when something is missing.
# Usage: tools/install-deps.sh [--clang]   (--clang adds clang 14 and its libFuzzer/sanitizer runtimes, for
# `make fuzz` and `make test-clang`; `make test` and `make demo` do not need them).
# OpenMPI (libopenmpi-dev openmpi-bin) is optional for the build: with it CMake enables `mpirun -np N moesim sweep`
# and its test. Chromium is optional too: with it the HTML report is rendered in a headless browser by a test.
# Both are installed here so that CI runs those tests instead of skipping them.
set -euo pipefail
pkgs=(build-essential cmake pkg-config git
      libsimgrid-dev libyaml-cpp-dev libfmt-dev libboost-graph-dev
      catch2 libcli11-dev nlohmann-json3-dev time
      libopenmpi-dev openmpi-bin chromium)
if [ "${1:-}" = --clang ]; then pkgs+=(clang libclang-rt-14-dev); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
