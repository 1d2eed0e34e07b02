#!/usr/bin/env bash
# BPE benchmark (not a test): tokenizer training time, encoding speed and
# compression on a text, per vocabulary size.
#
#   scripts/bench_bpe.sh [TEXT] [SIZES]      (default data/tinyshakespeare.txt 512,1024,4096)
#
# `tokenize bench` trains each size and encodes the whole text with it, 3 times,
# and prints the fastest (warm: the token buffer is reused). Then one cold
# `tokenize encode` per size, as train_llama does it once per text (a fresh
# buffer and word cache, the page faults included) writes a cache to a temp folder.
set -euo pipefail
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
