#!/usr/bin/env bash
# The Brown corpus as plain text, for `moe tokenize`: <data>/brown_text/{train,valid,test}.txt,
# one sentence per line, the tags stripped (word/tag -> word, Brown's own tokenization kept),
# split by document exactly as the brown_lm and brown_pos tasks split it (of the 500 files
# in name order, index % 10 == 0 -> test, == 1 -> valid, the rest train).
# Usage: bash experiments/brown_text.sh   (after experiments/fetch_data.sh; MOE_DATA_DIR as there)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${MOE_DATA_DIR:-data}
src="$DATA_DIR/brown" out="$DATA_DIR/brown_text"
files=$(cd "$src" 2>/dev/null && ls | grep -E '^c[a-z][0-9]{2}$' | sort || true)
if [ "$(echo "$files" | grep -c .)" != 500 ]; then
  echo "brown_text: expected the 500 Brown files in $src; run: bash experiments/fetch_data.sh" >&2
  exit 1
fi
mkdir -p "$out.tmp"
rm -f "$out.tmp"/*.txt
i=0
for f in $files; do
  case $((i % 10)) in 0) split=test ;; 1) split=valid ;; *) split=train ;; esac
  # word/tag -> word (the tag follows the last slash); drop blank lines and leading blanks
  sed -E 's#([^[:space:]]+)/[^[:space:]/]+#\1#g; s/^[[:space:]]+//; /^[[:space:]]*$/d' \
    "$src/$f" >>"$out.tmp/$split.txt"
  i=$((i + 1))
done
rm -rf "$out" && mv "$out.tmp" "$out"
wc -l "$out"/*.txt | sed 's/^/brown_text: /'
