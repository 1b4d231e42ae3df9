#!/usr/bin/env python3
"""Check that core/ depends one way: engine < value < exec < module.

Every #include "layer/file.h" in core/ must name a header of the including
file's own layer or of a lower one, and no file of core/engine may include
<Python.h> (that layer builds without Python's include path).  The only
cycle allowed is inside the value layer (a payload holds cowns, a cown holds
a payload).  Exits 1 and lists each violation; prints the layer graph with
--graph.  Also checks that the files of a plugin split into tiers
(PLUGIN_TIERS: plugins/opencl) include one way, and that the Python package
bocpy/ imports one way (PY_LAYERS: base < loader < value < runtime < face):
no import of a higher layer, no import cycle, and no bocpy import inside a
function unless a ``# lazy: <reason>`` comment says why (start-up cost).

    python scripts/check_layers.py [--root DIR] [--graph]
"""
from __future__ import annotations

import argparse
import ast
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


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle the depth-first search meets, as [a, b, ..., a], found once
    (nodes and edges visited in sorted order, so the report is stable)."""
    out: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                out.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return out


def cross_layer_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Cycles between files (header -> its .c merged) that leave the value layer."""
    def unit(name: str) -> str:
        return name.rsplit(".", 1)[0]

    deps: dict[str, set[str]] = {}
    for src, incs in graph.items():
        deps.setdefault(unit(src), set()).update(unit(i) for i in incs if unit(i) != unit(src))
    return ["include cycle: " + " -> ".join(cycle) for cycle in find_cycles(deps)
            if any(not c.startswith("value/") for c in cycle)]


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


# The Python package, bottom layer first (docs/development.md, "Layers of
# the Python package").  A module may import modules of its own layer or of
# lower ones, never in a cycle.  Names are relative to the package; "bocpy"
# is the package face (bocpy/__init__.py); a name ending in ".*" covers the
# modules under it (the C plugins).
PY_LAYERS: list[tuple[str, list[str]]] = [
    # The C module, the facts about the build, and the C plugins.
    ("base", ["_core", "_config", "_abi", "_source_tree", "_compat", "plugins", "plugins.*"]),
    # Loading behavior code in an interpreter, the worker's start-up, and
    # the workers' logging forward.
    ("loader", ["_logfwd", "_worker"]),
    # Values between interpreters: functions by value, exceptions carried.
    ("value", ["_errors", "_byvalue"]),
    # The runtime as the main interpreter drives it.
    ("runtime", ["_pump", "_signals", "_lifecycle", "_messaging", "_when", "_bulk",
                 "_observe", "trace", "_finalize", "_exit", "_fork", "_scope"]),
    # What programs import: the package face and the optional faces.
    ("face", ["bocpy", "__main__", "aio", "tk", "testing", "trace.__main__"]),
    # Backends besides the local workers, found by name at start(backend=...)
    # (bocpy._lifecycle): the Ray executor and what a Ray worker runs.
    ("backend", ["ray", "ray._driver", "ray._remote"]),
]
PY_RANK = {name: i for i, (_, names) in enumerate(PY_LAYERS) for name in names}
# The Python modules the C module (core/) imports by name to call back into.
CORE_CALLS = {"_core", "_byvalue", "_errors", "_when", "_worker"}
CORE_IMPORT = re.compile(r'PyImport_ImportModule\(\s*"bocpy\.([A-Za-z_.]+)"')
LAZY = re.compile(r"#.*\blazy:")


def py_module_name(rel: Path) -> str:
    """bocpy/_when.py -> "_when", bocpy/__init__.py -> "bocpy",
    bocpy/trace/__init__.py -> "trace" (names relative to the package)."""
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or "bocpy"


def py_layer(name: str) -> int | None:
    """The rank of a module of the table, or None when it is in none."""
    if name in PY_RANK:
        return PY_RANK[name]
    head = name.rsplit(".", 1)[0]
    while True:
        if head + ".*" in PY_RANK:
            return PY_RANK[head + ".*"]
        if "." not in head:
            return None
        head = head.rsplit(".", 1)[0]


def _imported(node: ast.Import | ast.ImportFrom, name: str, is_pkg: bool,
              known: set[str]) -> list[str]:
    """The package modules an import statement in module ``name`` names."""
    out: list[str] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == "bocpy" or alias.name.startswith("bocpy."):
                out.append(alias.name[6:] or "bocpy")
        return out
    if node.level == 0:
        if node.module is None or not (node.module == "bocpy"
                                       or node.module.startswith("bocpy.")):
            return out
        base = node.module[6:]
    else:
        # The package the relative import starts from: the module's own
        # package (itself for an __init__), then one up per extra dot.
        pkg = [] if name == "bocpy" else name.split(".")
        if not is_pkg:
            pkg = pkg[:-1]
        pkg = pkg[:len(pkg) - (node.level - 1)] if node.level > 1 else pkg
        base = ".".join(pkg + ([node.module] if node.module else []))
    for alias in node.names:
        sub = f"{base}.{alias.name}" if base else alias.name
        if sub in known:
            out.append(sub)  # ``from . import _core``: a module
        else:
            out.append(base or "bocpy")  # ``from ._when import when``
    return out


def py_problems(root: Path) -> tuple[list[str], dict[str, set[str]]]:
    """(violations, module -> imported package modules) for bocpy/ at root."""
    pkg = root / "bocpy"
    files = sorted(p for p in pkg.rglob("*.py") if "__pycache__" not in p.parts)
    names = {py_module_name(p.relative_to(pkg)): p for p in files}
    known = set(names) | {py_module_name(p.relative_to(pkg))
                          for p in pkg.rglob("*.pyi")}
    found: list[str] = []
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        where = f"bocpy/{path.relative_to(pkg)}"
        rank = py_layer(name)
        if rank is None:
            found.append(f"{where}: module {name!r} is in no layer of "
                         "scripts/check_layers.py PY_LAYERS")
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text, str(path))
        edges = graph.setdefault(name, set())
        in_function: set[int] = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                in_function.update(id(n) for n in ast.walk(fn) if n is not fn)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = _imported(node, name, path.name == "__init__.py", known)
            if not targets:
                continue
            line = node.lineno
            lazy = id(node) in in_function
            if lazy and not (LAZY.search(lines[line - 1]) or
                             (line >= 2 and LAZY.search(lines[line - 2])
                              and lines[line - 2].lstrip().startswith("#"))):
                found.append(f"{where}:{line}: imports {', '.join(targets)} inside a "
                             "function without a '# lazy: <reason>' comment (import "
                             "it at the top)")
            for dep in targets:
                if dep == name:
                    continue
                edges.add(dep)
                drank = py_layer(dep)
                if drank is None:
                    found.append(f"{where}:{line}: imports {dep!r}, which is in no layer")
                elif drank > rank:
                    found.append(
                        f"{where}:{line}: layer '{PY_LAYERS[rank][0]}' imports {dep!r} "
                        f"of the higher layer '{PY_LAYERS[drank][0]}'")
    found.extend(py_cycles(graph))
    for entry in PY_RANK:
        if not entry.endswith(".*") and entry not in known:
            found.append(f"scripts/check_layers.py: PY_LAYERS names {entry!r}, "
                         "which is no module of bocpy/")
    for path in core_files(root):
        for mod in CORE_IMPORT.findall(path.read_text(encoding="utf-8")):
            if mod not in CORE_CALLS:
                found.append(f"core/{path.relative_to(root / 'core')}: imports "
                             f"bocpy.{mod}, not in CORE_CALLS of scripts/check_layers.py")
    return found, graph


def py_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Each import cycle among the package's modules, found once."""
    return ["import cycle: " + " -> ".join(cycle) for cycle in find_cycles(graph)]


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
    yfound, ygraph = py_problems(args.root)
    if args.graph:
        for src in sorted(ygraph):
            print(f"bocpy {src}: {' '.join(sorted(ygraph[src])) or '-'}")
    for line in yfound:
        print(line, file=sys.stderr)
    if not yfound:
        print(f"bocpy/ layers OK: {' < '.join(n for n, _ in PY_LAYERS)} "
              f"({len(ygraph)} modules)")
    bad = bad or bool(yfound)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
