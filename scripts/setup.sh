#!/usr/bin/env bash
# The Debian packages this project needs, installed when missing: as root with
# apt-get; otherwise the exact apt-get line is printed and the script fails
# (when only oneDNN is missing, which the build can do without: a note).
# Used by `make test`, `make demo` and .ci/run. Extra packages may be named.
#
#   scripts/setup.sh [PACKAGE...]      -h, --help: this text
set -euo pipefail
for a in "$@"; do
    case $a in
    -h | --help) sed -n '2,/^set /{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    -*) echo "setup.sh: error: unknown option '$a' (arguments are package names); see --help" >&2; exit 2 ;;
    esac
done
# gcc/make build; OpenBLAS's OpenMP build is the BLAS; numpy + matplotlib run the
# analysis under /usr/bin/python3. (python3-torch only regenerates test/ref.)
# libdnnl-dev is oneDNN, the faster matmul backend (--matmul onednn): without it
# the programs build and run on OpenBLAS alone, so only root installs it here;
# others get one line and carry on (make then builds without it, its tests skip).
PKGS=(gcc make libc6-dev libopenblas-openmp-dev python3-numpy python3-matplotlib "$@")
OPTIONAL=(libdnnl-dev)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() optional=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${OPTIONAL[@]}"; do installed "$p" || optional+=("$p"); done
if [ "$(id -u)" -ne 0 ]; then
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup: missing packages; as root run:" >&2
        echo "  apt-get install -y ${missing[*]} ${optional[*]}" >&2
        exit 1
    fi
    [ ${#optional[@]} -eq 0 ] ||
        echo "setup: note: no ${optional[*]} (oneDNN: builds use OpenBLAS alone); as root: apt-get install -y ${optional[*]}" >&2
    exit 0
fi
missing+=("${optional[@]}")
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
