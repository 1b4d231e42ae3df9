"""Type stubs for bocpy.plugins.ctypes_bridge (an abi3 plugin).

Foreign memory (``Foreign``, ``PinnedForeign``) and foreign C functions
(``CFunction``) that cross interpreters: made where ctypes works (the main
interpreter), moved into cowns, messages, captures and noticeboard entries,
used in any worker - also on CPython 3.12, where a worker cannot import
ctypes.  Calls go through libffi.  A wrong address or size is undefined
behavior, as with ctypes itself.  See docs/ctypes_bridge.md.
"""

from typing import Any, Final, TypeVar

_T = TypeVar("_T")

MAX_ARGS: Final[int]
"""The most arguments a CFunction passes (32)."""

class Foreign:
    """An address, a size in bytes and an optional destructor: foreign memory
    that moves between interpreters by ownership, without copying.

    ``memory`` is an int address, a ctypes pointer (``POINTER(T)``,
    ``c_void_p``, ``c_char_p``) or a ctypes object that does not own its
    memory (e.g. ``(c_char * n).from_address(p)``); ``size`` defaults to the
    ctypes object's size and is required otherwise.  ``destructor`` (a ctypes
    foreign function taking one pointer, such as ``libc.free``, or a
    ``CFunction``) runs exactly once, when the last reference goes.
    ``pinned=True`` returns a ``PinnedForeign`` instead.

    Raises ValueError (size < 1, NULL address), TypeError (bad memory,
    size or destructor), OverflowError (an address out of range),
    RuntimeError (pinned off the main interpreter).
    """

    def __new__(cls, memory: Any, size: int | None = None, *,
                destructor: Any = None, pinned: bool = False) -> Foreign: ...
    @property
    def address(self) -> int:
        """The address (RuntimeError where this interpreter does not hold it)."""
    @property
    def size(self) -> int:
        """The size in bytes."""
    @property
    def acquired(self) -> bool:
        """True while this interpreter holds the memory."""
    @property
    def pinned(self) -> bool: ...
    @property
    def has_destructor(self) -> bool: ...
    def as_ctypes(self, ctype: type[_T]) -> _T:
        """The memory as a ctypes object (where ctypes can be imported):
        ``ctype.from_buffer(self)`` for a data type, a cast of the address
        for a pointer type.  ImportError where ctypes cannot be imported."""
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __reduce__(self) -> Any: ...

class PinnedForeign(Foreign):
    """Foreign memory pinned to the main interpreter: it can only live in a
    ``PinnedCown``; its destructor runs on the main thread when that
    PinnedCown dies (at exit too).  Made by ``Foreign(..., pinned=True)``
    or ``PinnedForeign(...)``."""

    def __new__(cls, memory: Any, size: int | None = None, *,
                destructor: Any = None, pinned: bool = True) -> PinnedForeign: ...

class CFunction:
    """A foreign C function every interpreter can call.

    ``func`` is a ctypes foreign function with ``argtypes`` (and ``restype``)
    set - or another CFunction, to change ``nogil``.  Arguments: ints
    (integer types, addresses), floats, bools, bytes (``c_char``: one byte;
    pointers: the bytes' data, read-only), ``Foreign`` (its address),
    ``bocpy.Matrix`` (its data pointer), buffers (bytearray, memoryview, ...)
    and None (NULL) for pointers.  Results: int, float, bool, bytes
    (``c_char``, ``c_char_p``), int or None (pointers), None (void).
    ``nogil=True`` releases the calling interpreter's GIL during the call.
    """

    def __new__(cls, func: Any, *, nogil: bool = False) -> CFunction: ...
    def __call__(self, *args: Any) -> Any: ...
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> int: ...
    @property
    def argtypes(self) -> tuple[str, ...]:
        """The ctypes names of the argument types, e.g. ('c_ulong', 'c_void_p')."""
    @property
    def restype(self) -> str | None: ...
    @property
    def nogil(self) -> bool: ...
    def __reduce__(self) -> Any: ...

def _live() -> tuple[int, int]:
    """(foreign-memory records, foreign-function records) alive in the process."""
