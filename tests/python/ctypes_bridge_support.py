"""Helpers for the ctypes bridge tests and benchmark: compile the small C
library in tests/python/data/ctypes_bridge_helper.c and declare its
functions with ctypes.

ctypes is imported inside the functions only: on CPython 3.12 it cannot be
imported in a worker sub-interpreter, and workers import the modules that
define behaviors (and so this one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

HELPER_SOURCE = Path(__file__).resolve().parent / "data" / "ctypes_bridge_helper.c"


def _signatures() -> dict[str, tuple[list[Any], Any]]:
    import ctypes
    return {
        "fbh_free": ([ctypes.c_void_p], None),
        "fbh_frees": ([], ctypes.c_long),
        "fbh_free_thread": ([], ctypes.c_ulong),
        "fbh_busy": ([ctypes.c_long], ctypes.c_long),
        "fbh_hold": ([ctypes.c_void_p, ctypes.c_long], ctypes.c_long),
        "fbh_active": ([], ctypes.c_long),
        "fbh_max_active": ([], ctypes.c_long),
        "fbh_reset": ([], None),
        "fbh_meet": ([ctypes.c_int, ctypes.c_long], ctypes.c_int),
        "fbh_scale": ([ctypes.POINTER(ctypes.c_double), ctypes.c_long, ctypes.c_double],
                      ctypes.c_double),
        "fbh_add64": ([ctypes.c_longlong, ctypes.c_longlong], ctypes.c_longlong),
        "fbh_u8_inc": ([ctypes.c_ubyte], ctypes.c_ubyte),
        "fbh_s8_neg": ([ctypes.c_byte], ctypes.c_byte),
        "fbh_u16": ([ctypes.c_ushort], ctypes.c_ushort),
        "fbh_i32": ([ctypes.c_int], ctypes.c_int),
        "fbh_u32": ([ctypes.c_uint], ctypes.c_uint),
        "fbh_u64": ([ctypes.c_ulonglong], ctypes.c_ulonglong),
        "fbh_half": ([ctypes.c_float], ctypes.c_float),
        "fbh_not": ([ctypes.c_bool], ctypes.c_bool),
        "fbh_upper": ([ctypes.c_char], ctypes.c_char),
        "fbh_echo": ([ctypes.c_char_p], ctypes.c_char_p),
        "fbh_ptr": ([ctypes.c_void_p], ctypes.c_void_p),
        "fbh_nothing": ([], None),
        "fbh_sum_bytes": ([ctypes.c_void_p, ctypes.c_long], ctypes.c_long),
        "fbh_fill": ([ctypes.c_void_p, ctypes.c_long, ctypes.c_int], None),
    }


def build_helper(directory: str | os.PathLike[str] | None = None) -> Path:
    """Compile the helper library into ``directory`` (a new temporary one by
    default) and return the path of the shared object."""
    out_dir = Path(directory) if directory is not None else Path(tempfile.mkdtemp())
    out = out_dir / "libfbh.so"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        cc = "cc"
    subprocess.run([cc, "-std=c11", "-O2", "-shared", "-fPIC", "-pthread",
                    "-o", str(out), str(HELPER_SOURCE)],
                   check=True, capture_output=True, text=True)
    return out


def load_helper(path: str | os.PathLike[str]) -> Any:
    """Load the helper library (a ctypes.CDLL) with every function's argtypes
    and restype set."""
    import ctypes
    lib = ctypes.CDLL(str(path))
    for name, (argtypes, restype) in _signatures().items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = restype
    return lib


def libc() -> Any:
    """The C library (a ctypes.CDLL), with malloc / free declared."""
    import ctypes
    lib = ctypes.CDLL(None)
    lib.malloc.argtypes = [ctypes.c_size_t]
    lib.malloc.restype = ctypes.c_void_p
    lib.free.argtypes = [ctypes.c_void_p]
    lib.free.restype = None
    return lib


def zlib_crc32() -> Any:
    """zlib's crc32(crc, buf, len), declared (a ctypes function)."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("z")
    if name is None:
        raise RuntimeError("zlib's shared library (libz) was not found; install zlib")
    fn = ctypes.CDLL(name).crc32
    fn.argtypes = [ctypes.c_ulong, ctypes.c_void_p, ctypes.c_uint]
    fn.restype = ctypes.c_ulong
    return fn
