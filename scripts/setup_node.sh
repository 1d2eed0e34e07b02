#!/usr/bin/env bash
# node-llama-cpp, pinned, under build/node: llama.cpp's own prebuilt CPU
# binaries for Node, which the GGUF export tests load our files with. Only the
# package for this platform is installed (the CUDA and Vulkan builds that npm
# would add as optional dependencies are 650 MB). Nothing is done when the
# pinned version is already there. Exit 1 (with a line saying so) when node or
# npm is missing or the registry cannot be reached: `make test` then skips
# those checks; .ci/run requires them.
#
#   scripts/setup_node.sh              -h, --help: this text
set -u
for a in "$@"; do
    case $a in
    -h | --help) sed -n '2,/^set /{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "setup_node.sh: error: unknown argument '$a' (it takes none); see --help" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
VERSION=3.21.1
DIR=build/node
PKG=$DIR/node_modules/node-llama-cpp/package.json
if [ -f "$PKG" ] && grep -q "\"version\": \"$VERSION\"" "$PKG"; then exit 0; fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "setup_node: node or npm is not installed: the llama.cpp (GGUF) checks will be skipped" >&2
    exit 1
fi
platform=$(node -p 'process.platform + "-" + process.arch')
mkdir -p "$DIR"
echo "setup_node: installing node-llama-cpp@$VERSION (@node-llama-cpp/$platform) under $DIR"
if ! npm install --prefix "$DIR" -E "node-llama-cpp@$VERSION" "@node-llama-cpp/$platform@$VERSION" \
        --omit=optional --no-audit --no-fund --loglevel=error --fetch-retries=1 --fetch-timeout=30000 >&2; then
    echo "setup_node: npm could not install node-llama-cpp@$VERSION: the llama.cpp (GGUF) checks will be skipped" >&2
    exit 1
fi
