#!/usr/bin/env bash
# get_data.sh: put Tiny Shakespeare in data/tinyshakespeare.txt (checked by sha256).
#
# Does nothing when the file is already there and valid. Otherwise downloads it (short
# timeout) and, when that fails (offline), copies ../shared/data/tinyshakespeare.txt
# (relative to the repository root). The file is written only once its checksum is right.
# Usage: data/get_data.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST="$ROOT/data/tinyshakespeare.txt"
URL=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
SHARED="$ROOT/../shared/data/tinyshakespeare.txt"
SHA256=86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

valid() { [[ -f $1 ]] && [[ $(sha256sum "$1" | cut -d' ' -f1) == "$SHA256" ]]; }

download() {  # url file
  if command -v curl >/dev/null; then
    curl -fsSL --connect-timeout 5 --max-time 60 -o "$2" "$1"
  elif command -v wget >/dev/null; then
    wget -q --timeout=10 --tries=1 -O "$2" "$1"
  else
    echo "get_data.sh: neither curl nor wget is installed" >&2
    return 1
  fi
}

if valid "$DEST"; then
  echo "data/tinyshakespeare.txt: already there, sha256 ok"
  exit 0
fi
[[ -e $DEST ]] && echo "get_data.sh: $DEST has the wrong sha256; fetching it again" >&2

tmp=$(mktemp "$ROOT/data/.tinyshakespeare.XXXXXX")
trap 'rm -f "$tmp"' EXIT

if download "$URL" "$tmp" 2>/dev/null && valid "$tmp"; then
  source=$URL
elif [[ -f $SHARED ]] && cp "$SHARED" "$tmp" && valid "$tmp"; then
  source=$SHARED
else
  echo "get_data.sh: error: could not get Tiny Shakespeare with sha256 $SHA256:" \
    "download of $URL failed or mismatched, and $SHARED is missing or mismatched" >&2
  exit 1
fi
chmod 644 "$tmp"
mv "$tmp" "$DEST"
echo "data/tinyshakespeare.txt: $(wc -c <"$DEST") bytes from $source, sha256 ok"
