"""A clear error for ``import bocpy`` from an unbuilt source checkout.

Python puts the script's directory (or the current directory, for ``-c``,
``-m`` and the REPL) first on ``sys.path``.  In the root of a bocpy checkout
that finds the ``bocpy/`` *sources*, which have no compiled ``bocpy._core``,
instead of the installed package, and the import would fail with a confusing
"partially initialized module" message.  ``bocpy/__init__.py`` calls
:func:`raise_if_source_tree` when importing ``_core`` fails; it raises an
``ImportError`` that says what happened and what to do, or returns (and the
original error propagates) when this is not a source checkout.
"""

from __future__ import annotations

from pathlib import Path


def _is_unbuilt_checkout(package_dir: Path) -> bool:
    root = package_dir.parent
    cmake = root / "CMakeLists.txt"
    try:
        is_ours = "project(bocpy " in cmake.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    built = any(package_dir.glob("_core*.so")) or any(package_dir.glob("_core*.pyd"))
    return is_ours and (root / "abi").is_dir() and not built


def raise_if_source_tree(cause: BaseException) -> None:
    """Raise ``ImportError`` with advice when ``bocpy`` was imported from a
    source checkout that holds no built ``bocpy._core``; else return."""
    package_dir = Path(__file__).resolve().parent
    if not _is_unbuilt_checkout(package_dir):
        return
    raise ImportError(
        f"bocpy was imported from its source directory ({package_dir}), which "
        "holds the Python sources but no compiled bocpy._core extension.\n"
        "This happens when you run Python in the root of a bocpy checkout: the "
        "current directory comes first on sys.path and shadows the installed "
        "package.\n"
        "What to do:\n"
        "  * to use an installed bocpy, run your program from another "
        "directory, or run `python -P ...` (CPython 3.11+: the current "
        "directory is then not put on sys.path);\n"
        "  * to use this checkout, build and install it first: "
        "`pip install .` (see docs/development.md), then run from another "
        "directory."
    ) from cause
