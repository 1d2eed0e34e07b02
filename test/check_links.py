#!/usr/bin/env python3
"""check_links.py [FILE.md ...]: every relative link in README.md and docs/**/*.md
(or the files given) must name an existing file, and a #fragment must name a heading
of the target page (GitHub's anchors: lower case, punctuation dropped, spaces to '-').
Links inside code (fenced blocks, `inline`) are not links. Prints one line per broken
link (FILE:LINE: target: why) and exits 1 if there is any; run from the repository root."""
import glob
import os
import re
import sys

LINK = re.compile(r'!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')


def prose_lines(path):
    """(line number, text) of the lines outside fenced code, inline code removed."""
    fence = None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"^\s*(```+|~~~+)", line)
            if m:
                if fence is None:
                    fence = m.group(1)[:3]
                elif m.group(1).startswith(fence):
                    fence = None
                continue
            if fence is None:
                yield n, re.sub(r"(`+)(?:(?!\1).)+\1", "", line.rstrip("\n"))


def slug(text):
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


_anchors = {}


def anchors(path):
    if path not in _anchors:
        seen, out = {}, set()
        fence = None
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^\s*(```+|~~~+)", line)
                if m:
                    fence = None if fence else m.group(1)[:3]
                    continue
                h = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line) if fence is None else None
                if h:
                    s = slug(h.group(1).replace("`", ""))
                    k = seen.get(s, 0)
                    seen[s] = k + 1
                    out.add(s if k == 0 else f"{s}-{k}")
        _anchors[path] = out
    return _anchors[path]


def main(argv):
    if argv[1:2] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    files = argv[1:] or ["README.md"] + sorted(glob.glob("docs/**/*.md", recursive=True))
    bad = 0
    for path in files:
        for n, line in prose_lines(path):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                    continue
                file, _, frag = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
                why = None
                if not os.path.exists(dest):
                    why = "no such file"
                elif frag and dest.endswith(".md") and frag not in anchors(dest):
                    why = f"no heading #{frag} in {dest}"
                if why:
                    print(f"{path}:{n}: {target}: {why}")
                    bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
