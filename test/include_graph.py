#!/usr/bin/env python3
"""The module graph of the C code: a module is NAME.c with NAME.h; an edge
NAME -> OTHER where either file of NAME includes OTHER.h. Prints the cycles
(none: exit 0) and any include of a header above src/ from inside src/
(the headers the build writes under build/ are not modules).
Usage: test/include_graph.py [ROOT]"""
import os, re, sys

def modules(root):
    graph = {}
    for d in (".", "src"):
        for f in sorted(os.listdir(os.path.join(root, d))):
            if not f.endswith((".c", ".h")):
                continue
            mod = os.path.normpath(os.path.join(d, f[:-2]))
            text = open(os.path.join(root, d, f), encoding="utf-8").read()
            for inc in re.findall(r'^#include "([^"]+)\.h"', text, re.M):
                other = os.path.normpath(os.path.join(d, inc))
                if other.startswith("build/"):
                    continue  # a file the build writes (build/version.h), not a module
                if other != mod:
                    graph.setdefault(mod, set()).add(other)
            graph.setdefault(mod, set())
    return graph

def cycles(graph):
    found, state = [], {}
    def visit(n, path):
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                found.append(path[path.index(m):] + [m])
            elif not state.get(m):
                visit(m, path + [m])
        state[n] = 2
    for n in sorted(graph):
        if not state.get(n):
            visit(n, [n])
    return found

def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    graph = modules(root)
    bad = [" -> ".join(c) for c in cycles(graph)]
    bad += [f"{m} includes {o}.h from above src/" for m, os_ in graph.items() if m.startswith("src/")
            for o in os_ if not o.startswith("src/")]
    for b in bad:
        print(b)
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} include edges, {len(bad)} problems")
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main())
