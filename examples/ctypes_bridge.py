"""Foreign memory and a foreign C function, used in parallel by workers.

The main interpreter allocates buffers with ``libc.malloc`` through ctypes
and wraps each in a ``Foreign`` (address, size, destructor ``libc.free``)
inside a ``Cown``.  It also wraps zlib's ``crc32`` in a ``CFunction``.  Worker
behaviors then fill each buffer (through the buffer protocol) and checksum it
by calling ``crc32`` through libffi - on CPython 3.12 too, where a worker
cannot even ``import ctypes``.  Nothing is copied: each buffer moves to the
worker that holds its cown and comes back.  Main checks every checksum
against Python's ``zlib.crc32``; ``libc.free`` runs once per buffer when its
last reference goes.

    python examples/ctypes_bridge.py [buffers] [megabytes]

ctypes is imported inside ``main()`` only: workers import this file to run
its behaviors, and on 3.12 ``import ctypes`` fails there.
"""

from __future__ import annotations

import sys

from bocpy import Cown, wait, when
from bocpy.plugins.ctypes_bridge import CFunction, Foreign


def pattern(index: int, size: int) -> bytes:
    """The deterministic content of buffer ``index``."""
    seed = bytes((index * 31 + k * 7) % 251 for k in range(251))
    return (seed * (size // len(seed) + 1))[:size]


def main(buffers: int, size: int) -> int:
    import ctypes
    import ctypes.util
    import zlib

    libc = ctypes.CDLL(None)
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free.restype = None
    libz_name = ctypes.util.find_library("z")
    if libz_name is None:
        print("zlib's shared library (libz) was not found", file=sys.stderr)
        return 1
    libz = ctypes.CDLL(libz_name)
    libz.crc32.argtypes = [ctypes.c_ulong, ctypes.c_void_p, ctypes.c_uint]
    libz.crc32.restype = ctypes.c_ulong
    crc32 = CFunction(libz.crc32, nogil=True)  # callable in every interpreter

    boxes = []
    for _ in range(buffers):
        address = libc.malloc(size)
        if not address:
            raise MemoryError(f"malloc({size}) failed")
        boxes.append(Cown(Foreign(address, size, destructor=libc.free)))

    checksums = []
    for index, box in enumerate(boxes):

        @when(box)
        def fill_and_checksum(box):  # on a worker: the buffer moved here
            memory = box.value
            with memoryview(memory) as view:
                view[:] = pattern(index, memory.size)
            return crc32(0, memory, memory.size)  # zlib's C code, via libffi

        checksums.append(fill_and_checksum)
    wait()

    matches = 0
    for index, (box, checksum) in enumerate(zip(boxes, checksums)):
        with memoryview(box.value) as view:  # the buffer is back on main
            expected = zlib.crc32(view)
        ok = checksum.value == expected
        matches += ok
        print(f"buffer {index}: {size} bytes, crc32 {checksum.value:#010x} "
              f"({'matches' if ok else 'DIFFERS FROM'} zlib.crc32)")
    print(f"{matches} of {buffers} checksums match zlib.crc32")
    return 0 if matches == buffers else 1


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    megabytes = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    sys.exit(main(count, int(megabytes * (1 << 20))))
