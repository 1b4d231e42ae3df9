"""Property test of the main-module reducer (bocpy._worker.reduce_module,
issue #26): generated module shapes (if/elif/else, try/except/finally,
with, match, loops, nested defs and classes, decorators, ``__name__ ==
"__main__"`` guards, @when behaviors) are reduced; every kept statement
compiles on its own, the reduced module runs without a skipped statement,
and the names it keeps are bound as in the full module.  One subprocess test
then runs behaviors that use kept names of such a module."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bocpy import _worker

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

HEADER = [
    "import functools",
    "from bocpy import when",
    "FLAG = True",
    "OFF = False",
]


class Names:
    """Fresh names per generated module."""

    def __init__(self) -> None:
        self.n = 0

    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"


def indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


@st.composite
def block(draw: st.DrawFn, names: Names, depth: int) -> tuple[list[str], dict[str, int]]:
    """Source lines of a few statements, and the module-level data names they
    bind for sure when run top to bottom, with their values (only where the
    reducer promises to keep them: plain assignments and if-blocks on data)."""
    lines: list[str] = []
    bound: dict[str, int] = {}
    for _ in range(draw(st.integers(1, 3))):
        kinds = ["assign", "def", "class", "decorated", "print", "when"]
        if depth < 3:
            kinds += ["if", "ifelse", "elif", "try", "with", "match", "for", "while",
                      "main_guard", "nested"]
        kind = draw(st.sampled_from(kinds))
        value = draw(st.integers(0, 99))
        if kind == "assign":
            name = names.fresh("V")
            lines.append(f"{name} = {value}")
            bound[name] = value
        elif kind == "def":
            name = names.fresh("f")
            lines += [f"def {name}(x={value}):", "    return x"]
        elif kind == "class":
            name = names.fresh("C")
            lines += [f"class {name}:", f"    k = {value}"]
        elif kind == "decorated":
            name = names.fresh("g")
            lines += ["@functools.lru_cache(maxsize=None)", f"def {name}():",
                      f"    return {value}"]
        elif kind == "print":
            lines.append(f"print({value})")
        elif kind == "when":
            name = names.fresh("b")
            lines += ["@when()", f"def {name}():", f"    return {value}"]
        elif kind in ("if", "ifelse", "elif"):
            body, b_bound = draw(block(names, depth + 1))
            lines += ["if FLAG:"] + indent(body)
            bound.update(b_bound)  # FLAG is True: the body runs
            if kind in ("ifelse", "elif"):
                if kind == "elif":
                    other, _ = draw(block(names, depth + 1))
                    lines += ["elif OFF:"] + indent(other)
                other, _ = draw(block(names, depth + 1))
                lines += ["else:"] + indent(other)
        elif kind == "try":
            body, _ = draw(block(names, depth + 1))
            handler, _ = draw(block(names, depth + 1))
            final, _ = draw(block(names, depth + 1))
            lines += ["try:"] + indent(body) + ["except Exception:"] + indent(handler)
            lines += ["finally:"] + indent(final)
        elif kind == "with":
            body, _ = draw(block(names, depth + 1))
            lines += ["with open(__file__) as fh:"] + indent(body)
        elif kind == "match" and sys.version_info >= (3, 10):
            body, _ = draw(block(names, depth + 1))
            lines += [f"match {value}:", "    case 1:"] + indent(indent(body))
            lines += ["    case _:", "        pass"]
        elif kind == "for":
            body, _ = draw(block(names, depth + 1))
            lines += ["for i in range(2):"] + indent(body)
        elif kind == "while":
            body, _ = draw(block(names, depth + 1))
            lines += ["while OFF:"] + indent(body)
        elif kind == "main_guard":
            body, _ = draw(block(names, depth + 1))
            lines += ['if __name__ == "__main__":'] + indent(body)
        elif kind == "nested":
            body, _ = draw(block(names, depth + 1))
            name = names.fresh("outer")
            lines += [f"def {name}():"] + indent(body) + ["    return 0"]
            cls = names.fresh("Outer")
            lines += [f"class {cls}:"] + indent(body)
    return lines, bound


@st.composite
def modules(draw: st.DrawFn) -> tuple[str, dict[str, int]]:
    lines, bound = draw(block(Names(), 0))
    return "\n".join(HEADER + lines) + "\n", bound


@SETTINGS
@given(modules())
def test_reduced_module_compiles_runs_and_keeps_its_names(mod: tuple[str, dict[str, int]]) -> None:
    source, bound = mod
    tree = ast.parse(source)
    kept = _worker.reduce_module(tree)
    for stmt in kept:  # every kept statement compiles on its own
        compile(ast.Module(body=[stmt], type_ignores=[]), "<generated>", "exec")
    skipped_before = len(_worker.skipped)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    try:
        ns: dict[str, object] = {"__name__": "__reduced__", "__file__": f.name}
        _worker.loading = True  # as when a worker loads it: @when schedules nothing
        _worker.run_reduced(source, f.name, ns, "__reduced__")
    finally:
        _worker.loading = False
        os.unlink(f.name)
    assert _worker.skipped[skipped_before:] == []
    for name, value in bound.items():
        assert ns.get(name) == value, (name, source)
    # top-level functions and classes (not behaviors) are kept
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)) and not stmt.decorator_list:
            assert stmt.name in ns, (stmt.name, source)
    assert not any(k.startswith("b") and k[1:].isdigit() for k in ns), source


def test_behaviors_use_the_kept_names_of_a_module_of_every_shape() -> None:
    source = textwrap.dedent("""
        import functools
        from bocpy import wait, when

        FLAG = True
        DEBUG = False
        if DEBUG:
            print("debug")
        elif FLAG:
            A = 1
        else:
            A = 2
        try:
            import json
        except ImportError:
            json = None
        finally:
            pass
        with open(__file__) as fh:
            IGNORED = fh.read()
        for i in range(2):
            LOOPED = i
        match A:
            case 1:
                MATCHED = True
            case _:
                MATCHED = False

        def outer():
            def inner():
                return 1
            class Local:
                pass
            return inner() + 1

        class Shape:
            class Inner:
                size = 3

            @staticmethod
            def area(n):
                return n * n

        @functools.lru_cache(maxsize=None)
        def cached(n):
            return n + 10

        if __name__ == "__main__":
            @when()
            def b():
                return (A + outer() + Shape.area(Shape.Inner.size) + cached(0)
                        + len(json.dumps([1])))

            wait()
            print("result", b.value)
    """)
    with tempfile.TemporaryDirectory() as cwd:
        prog = Path(cwd) / "prog.py"
        prog.write_text(source)
        proc = subprocess.run([sys.executable, str(prog)], cwd=cwd, capture_output=True,
                              text=True, timeout=120,
                              env={**os.environ, "BOCPY_WORKERS": "2"})
    assert proc.returncode == 0, proc.stderr
    # 1 + 2 + 9 + 10 + len("[1]")
    assert "result 25" in proc.stdout, proc.stdout + proc.stderr
