"""Run code in a sub-interpreter that has its own GIL (test helper).

CPython 3.12 exposes sub-interpreters as ``_xxsubinterpreters`` and 3.13 as
``_interpreters``; both create isolated interpreters (own GIL) by default.
On 3.10 and 3.11 ``_xxsubinterpreters`` creates interpreters that share the
one GIL (there is no other kind), as bocpy's workers there do.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap

try:  # CPython 3.13
    import _interpreters as _interp

    def _create() -> int:
        return _interp.create("isolated")

    def _own_gil(interp: int) -> bool:
        return _interp.get_config(interp).gil == "own"

except ImportError:  # CPython 3.10 to 3.12
    import _xxsubinterpreters as _interp  # type: ignore[no-redef]

    def _create() -> int:
        return _interp.create(isolated=True)

    def _own_gil(interp: int) -> bool:
        # 3.12's isolated=True is documented as "own GIL, own allocator";
        # 3.10/3.11 have only the shared GIL.
        return sys.version_info >= (3, 12)


def run_isolated(source: str) -> str:
    """Run ``source`` in a fresh own-GIL sub-interpreter (on 3.10/3.11 one
    that shares the GIL) and return what it wrote with ``emit(text)``; raise
    ``RuntimeError`` if it raised."""
    fd, path = tempfile.mkstemp(prefix="bocpy-subinterp-")
    os.close(fd)
    prologue = (
        f"def emit(text):\n"
        f"    with open({path!r}, 'a', encoding='utf-8') as f:\n"
        f"        f.write(str(text))\n"
    )
    interp = _create()
    try:
        if not _own_gil(interp) and sys.version_info >= (3, 12):
            raise RuntimeError("sub-interpreter was not created with its own GIL")
        try:
            failure = _interp.run_string(interp, prologue + textwrap.dedent(source))
        except Exception as exc:  # 3.12 raises RunFailedError
            raise RuntimeError(f"sub-interpreter raised: {exc}") from exc
        if failure is not None:  # 3.13 returns the exception's summary
            raise RuntimeError(f"sub-interpreter raised: {failure}")
        with open(path, encoding="utf-8") as f:
            return f.read()
    finally:
        _interp.destroy(interp)
        os.unlink(path)
