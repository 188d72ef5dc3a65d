#!/usr/bin/env python3
"""Fails when the project's own headers include each other in a cycle.

Builds the graph of '#include "dir/file.h"' lines over engine/ and http/, with a .c file
and its .h taken as one node (the module), and reports every cycle it finds. A cycle
means two modules cannot be understood, tested or replaced one without the other
(issue 13: tk_respond called up into the router, idempotency, metrics and the log).
Usage: test_include_cycles.py SOURCE_DIR
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"((?:engine|http)/[^"]+)\.[ch]"', re.M)


def modules(root):
    graph = {}
    for d in ("engine", "http"):
        for name in sorted(os.listdir(os.path.join(root, d))):
            if not name.endswith((".c", ".h")):
                continue
            node = d + "/" + name[:-2]
            with open(os.path.join(root, d, name), encoding="utf-8", errors="replace") as f:
                deps = set(INCLUDE.findall(f.read()))
            graph.setdefault(node, set()).update(x for x in deps if x != node)
    return graph


def cycles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    graph = modules(root)
    found = cycles(graph)
    for comp in found:
        members = set(comp)
        edges = ["%s -> %s" % (a, b) for a in comp for b in sorted(graph[a]) if b in members]
        print("include cycle among %s:\n    %s" % (", ".join(comp), "\n    ".join(edges)))
    if found:
        return 1
    print("no include cycles among %d modules of engine/ and http/" % len(graph))
    return 0


if __name__ == "__main__":
    sys.exit(main())
