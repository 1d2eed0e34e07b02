#!/usr/bin/env bash
# BPE benchmark (not a test): tokenizer training time, encoding speed and
# compression on a text, per vocabulary size.
#
#   scripts/bench_bpe.sh [TEXT] [SIZES]      (default data/tinyshakespeare.txt 512,1024,4096)
#   scripts/bench_bpe.sh -h | --help         this text
#
# `tokenize bench` trains each size and encodes the whole text with it, 3 times,
# and prints the fastest (warm: the token buffer is reused). Then one cold
# `tokenize encode` per size, as train_llama does it once per text (a fresh
# buffer and word cache, the page faults included) writes a cache to a temp folder.
set -euo pipefail
case ${1:-} in
-h | --help) sed -n '2,/^set /{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
-*) echo "bench_bpe.sh: error: unknown option '$1'; see --help" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
TEXT=${1:-data/tinyshakespeare.txt}
SIZES=${2:-512,1024,4096}
[ -f "$TEXT" ] || data/get_data.sh >/dev/null
[ -x tokenize ] || make --no-print-directory tokenize >/dev/null
./tokenize bench "$TEXT" --sizes "$SIZES" --repeat 3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cp "$TEXT" "$T/text"
for v in ${SIZES//,/ }; do
    ./tokenize train "$T/text" --vocab-size "$v" 2>/dev/null
    ./tokenize encode "$T/text" --tokenizer "$T/text.bpe$v" 2>&1 | sed "s|^tokenize:|cold encode, vocab $v:|; s|; wrote.*||"
done
