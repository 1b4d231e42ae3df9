#!/usr/bin/env python3
"""Check that core/ depends one way: engine < value < exec < module.

Every #include "layer/file.h" in core/ must name a header of the including
file's own layer or of a lower one, and no file of core/engine may include
<Python.h> (that layer builds without Python's include path).  The only
cycle allowed is inside the value layer (a payload holds cowns, a cown holds
a payload).  Exits 1 and lists each violation; prints the layer graph with
--graph.

    python scripts/check_layers.py [--root DIR] [--graph]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

LAYERS = ["engine", "value", "exec", "module"]
RANK = {name: i for i, name in enumerate(LAYERS)}
QUOTED = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SYSTEM = re.compile(r"^\s*#\s*include\s+<([^>]+)>", re.M)


def core_files(root: Path) -> list[Path]:
    """Every C source and header under core/, in a stable order."""
    return sorted(p for p in (root / "core").rglob("*") if p.suffix in (".c", ".h"))


def problems(root: Path) -> tuple[list[str], dict[str, set[str]]]:
    """(violations, file -> included core headers) for the tree at root."""
    found: list[str] = []
    graph: dict[str, set[str]] = {}
    for path in core_files(root):
        rel = path.relative_to(root / "core")
        layer = rel.parts[0] if len(rel.parts) > 1 else None
        if layer not in RANK:
            found.append(f"core/{rel}: not inside a layer folder ({', '.join(LAYERS)})")
            continue
        text = path.read_text(encoding="utf-8")
        edges = graph.setdefault(str(rel), set())
        for inc in QUOTED.findall(text):
            head = inc.split("/", 1)[0]
            if head not in RANK:
                continue  # public ABI headers (bocpy/...) and the like
            edges.add(inc)
            if not (root / "core" / inc).is_file():
                found.append(f"core/{rel}: includes missing header \"{inc}\"")
            if RANK[head] > RANK[layer]:
                found.append(
                    f"core/{rel}: layer '{layer}' includes \"{inc}\" of the "
                    f"higher layer '{head}'")
        if layer == "engine" and "Python.h" in SYSTEM.findall(text):
            found.append(f"core/{rel}: the engine layer must not include <Python.h>")
    found.extend(cross_layer_cycles(graph))
    return found, graph


def cross_layer_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Cycles between files (header -> its .c merged) that leave the value layer."""
    def unit(name: str) -> str:
        return name.rsplit(".", 1)[0]

    deps: dict[str, set[str]] = {}
    for src, incs in graph.items():
        deps.setdefault(unit(src), set()).update(unit(i) for i in incs if unit(i) != unit(src))
    out: list[str] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(deps.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                if any(not c.startswith("value/") for c in cycle):
                    out.append("include cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(deps):
        if node not in state:
            visit(node)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--graph", action="store_true", help="print each file's core includes")
    args = ap.parse_args(argv)
    found, graph = problems(args.root)
    if args.graph:
        for src in sorted(graph):
            print(f"{src}: {' '.join(sorted(graph[src])) or '-'}")
    for line in found:
        print(line, file=sys.stderr)
    if not found:
        print(f"core/ layers OK: {' < '.join(LAYERS)} ({len(graph)} files)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
