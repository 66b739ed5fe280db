#!/usr/bin/env bash
# Packs what a GPU machine without Debian's dev packages needs to build and test moe-lab
# (../shared/gpu/README.md): the headers and libraries of Boost.Program_options, SQLite,
# SentencePiece, toml++, nlohmann-json, GoogleTest and Google Benchmark with their CMake package files,
# and the Brown corpus, into one git-ignored folder (default gpu_deps/, under 64 MiB) that
# the device call carries. Run on the Debian machine after experiments/setup.sh:
#   bash experiments/gpu/pack_deps.sh [OUT_DIR]
# The layout mirrors /usr (include/, lib/x86_64-linux-gnu/ with its cmake/ packages), so
# the packages' own relative paths resolve inside it. LibTorch is not packed: the GPU
# machine's PyTorch wheel holds it.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-gpu_deps}"
arch=x86_64-linux-gnu
rm -rf "$out"
mkdir -p "$out/include" "$out/lib/$arch/cmake" "$out/data"

# Headers: exactly the files the compiler reads for each library (its -M dependency list),
# minus what every C++ toolchain has (libstdc++, glibc, the compiler's own).
probe=$(mktemp --suffix=.cpp)
trap 'rm -f "$probe"' EXIT
# Every third-party header the tree includes (so a new #include is packed without edits).
grep -rhoE '#include <(boost|toml\+\+|nlohmann|gtest|gmock|benchmark)/[^>]+>|#include <(sqlite3|sentencepiece_[a-z]+)\.h>' \
  core plugins experiments results tests | sort -u > "$probe"
g++ -std=c++20 -M "$probe" | tr ' \\' '\n\n' | grep -E '^/usr/include/' |
  grep -E '^/usr/include/(boost|toml\+\+|nlohmann|gtest|gmock|benchmark)/|^/usr/include/(sqlite3|sentencepiece_)' |
  sort -u > "$out/headers.txt"
# toml++ and nlohmann are header-only: take their whole trees (small), as their CMake
# packages expect them.
for dir in toml++ nlohmann gtest gmock benchmark; do
  find "/usr/include/$dir" -type f >> "$out/headers.txt"
done
sort -u -o "$out/headers.txt" "$out/headers.txt"
while read -r header; do
  rel="${header#/usr/include/}"
  mkdir -p "$out/include/$(dirname "$rel")"
  cp "$header" "$out/include/$rel"
done < "$out/headers.txt"

# Every header the tree names is in the pack.
sed -E 's/#include <([^>]+)>/\1/' "$probe" | while read -r header; do
  [ -f "$out/include/$header" ] || { echo "pack_deps: $header was not packed" >&2; exit 1; }
done

# Libraries (shared and static, with their version links) and CMake packages.
lib=/usr/lib/$arch
for pattern in 'libboost_program_options.*' 'libsqlite3.*' 'libtomlplusplus.*' 'libgtest*.a' 'libgmock*.a' \
               'libbenchmark*' 'libsentencepiece*'; do
  # shellcheck disable=SC2086
  cp -P $lib/$pattern "$out/lib/$arch/"
done
for pkg in Boost-1.74.0 BoostDetectToolset-1.74.0.cmake boost_headers-1.74.0 \
           boost_program_options-1.74.0 GTest benchmark tomlplusplus; do
  cp -r "$lib/cmake/$pkg" "$out/lib/$arch/cmake/"
done
mkdir -p "$out/share/cmake"
cp -r /usr/share/cmake/nlohmann_json "$out/share/cmake/"
cp /usr/lib/$arch/pkgconfig/tomlplusplus.pc "$out/lib/$arch/" 2>/dev/null || true

# The Brown corpus (tests and the quick sweep read data/brown).
if [ -d data/brown ]; then
  cp -r data/brown "$out/data/"
else
  echo "pack_deps: data/brown is missing; run experiments/setup.sh first" >&2
  exit 1
fi

size=$(du -sm "$out" | cut -f1)
echo "pack_deps: $out holds $(wc -l < "$out/headers.txt") headers, $(ls "$out/lib/$arch" | wc -l) library entries, the Brown corpus: ${size} MiB"
if [ "$size" -ge 64 ]; then
  echo "pack_deps: $out is ${size} MiB, over the 64 MiB a device call carries" >&2
  exit 1
fi
