#!/usr/bin/env python3
"""Check that core/ depends one way: engine < value < exec < module.

Every #include "layer/file.h" in core/ must name a header of the including
file's own layer or of a lower one, and no file of core/engine may include
<Python.h> (that layer builds without Python's include path).  The only
cycle allowed is inside the value layer (a payload holds cowns, a cown holds
a payload).  Exits 1 and lists each violation; prints the layer graph with
--graph.  Also checks that the files of a plugin split into tiers
(PLUGIN_TIERS: plugins/opencl) include one way.

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


# Plugins split into files one way: each file's unit (its .c and .h) sits in
# a tier, top first, and may include only units of lower tiers; each .c
# includes its own header first (the units in "no_header" have none).
PLUGIN_TIERS: dict[str, dict[str, list[list[str]] | set[str]]] = {
    "opencl": {
        "tiers": [["ocl_module"], ["ocl_context"], ["ocl_run"], ["ocl_program"],
                  ["ocl_buffer"], ["ocl_matrix"], ["ocl_child"], ["ocl_device"],
                  ["ocl_obj"], ["ocl_queue"], ["ocl_args"], ["ocl_kind"],
                  ["cl_loader"], ["cl_abi"]],
        "no_header": {"ocl_module"},
    },
}


def plugin_problems(root: Path, name: str) -> tuple[list[str], dict[str, set[str]]]:
    """(violations, unit -> included units) for plugins/<name> at root."""
    spec = PLUGIN_TIERS[name]
    tiers = spec["tiers"]
    assert isinstance(tiers, list)
    rank = {unit: i for i, tier in enumerate(tiers) for unit in tier}
    src = root / "plugins" / name
    found: list[str] = []
    graph: dict[str, set[str]] = {}
    for path in sorted(p for p in src.iterdir() if p.suffix in (".c", ".h")):
        unit = path.stem
        where = f"plugins/{name}/{path.name}"
        if unit not in rank:
            found.append(f"{where}: not in a tier of scripts/check_layers.py PLUGIN_TIERS")
            continue
        incs = QUOTED.findall(path.read_text(encoding="utf-8"))
        edges = graph.setdefault(unit, set())
        for inc in incs:
            dep = inc.rsplit(".", 1)[0]
            if "/" in inc or dep == unit:
                continue  # <bocpy/...> style public headers, its own header
            edges.add(dep)
            if not (src / inc).is_file():
                found.append(f"{where}: includes missing header \"{inc}\"")
            elif dep not in rank:
                found.append(f"{where}: includes \"{inc}\", which is in no tier")
            elif rank[dep] <= rank[unit]:
                found.append(f"{where}: includes \"{inc}\" of the same or a higher "
                             f"tier ({dep} is not below {unit})")
        if path.suffix == ".c" and unit not in spec["no_header"]:
            if not incs or incs[0] != f"{unit}.h":
                found.append(f"{where}: does not include its own header {unit}.h first")
    return found, graph


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
    bad = bool(found)
    for name in PLUGIN_TIERS:
        pfound, pgraph = plugin_problems(args.root, name)
        for line in pfound:
            print(line, file=sys.stderr)
        if not pfound:
            print(f"plugins/{name} files depend one way ({len(pgraph)} units)")
        bad = bad or bool(pfound)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
