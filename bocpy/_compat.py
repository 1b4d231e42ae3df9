"""Every difference between the CPython versions bocpy supports (3.10 to
3.13) that the Python side meets, in one place (the C side's are in
core/value/pycompat.h and abi/include/bocpy/compat.h).

* A behavior's body travels as marshalled code.  From 3.11 on a code object
  knows its qualified name (``co_qualname``); on 3.10 it does not, so there
  the blob is the marshalled pair ``(code, qualname)``.  :func:`dump_code`
  and :func:`load_code` hide which.
"""

from __future__ import annotations

import marshal
import sys
import types

#: Whether code objects carry their qualified name (CPython 3.11+).
CODE_HAS_QUALNAME = sys.version_info >= (3, 11)


def dump_code(code: types.CodeType, qualname: str) -> bytes:
    """The blob a behavior's body travels as (see :func:`load_code`)."""
    if CODE_HAS_QUALNAME:
        return marshal.dumps(code)
    return marshal.dumps((code, qualname))


def load_code(blob: bytes) -> tuple[types.CodeType, str]:
    """(code, qualified name) from a :func:`dump_code` blob; ``TypeError``
    if it holds no code object."""
    obj = marshal.loads(blob)
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], str):
        code, qualname = obj
    else:
        code = obj
        qualname = getattr(obj, "co_qualname", getattr(obj, "co_name", ""))
    if not isinstance(code, types.CodeType):
        raise TypeError("behavior code is not a code object")
    return code, qualname
