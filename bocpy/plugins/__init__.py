"""Plugins shipped with bocpy: C extension modules built against the stable
ABI (``*.abi3.so``; on CPython 3.10/3.11 a module per version from the same
sources) and bocpy's C ABI table (see docs/c_abi.md).

* :mod:`bocpy.plugins.files` - pinned file handles, written by pinned
  behaviors on the main thread, flushed on release, closed with their
  ``PinnedCown``.
* :mod:`bocpy.plugins.ctypes_bridge` - ``Foreign`` memory and ``CFunction``
  foreign functions made with ctypes on main, moved to and called from any
  worker (also on 3.12, where workers cannot import ctypes; 3.10, 3.11 and
  3.13 workers can).
* :mod:`bocpy.plugins.matrix` - ``Matrix``, a dense float64 matrix that
  moves between interpreters without copying (re-exported as
  ``bocpy.Matrix``).
* :mod:`bocpy.plugins.opencl` - OpenCL contexts as pinned values: programs,
  kernels and device buffers used from pinned behaviors, with ``Matrix``
  data (the OpenCL runtime is loaded at run time; see docs/opencl.md).

ctypes_bridge and opencl are optional parts of the build: one left out
(its system library missing, or turned off) is a module whose import raises
ImportError saying what to install (docs/packaging.md, "Optional plugins").
"""
