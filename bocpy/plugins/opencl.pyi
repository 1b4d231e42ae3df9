"""Type stubs for bocpy.plugins.opencl (an abi3 plugin: OpenCL contexts as
pinned values; see docs/opencl.md)."""

from typing import Literal, TypedDict

from bocpy import Matrix, PinnedCown

DEVICE_ENV: str  # "BOCPY_OPENCL_DEVICE"

DType = Literal["float64", "float32", "int32", "int64"]
Work = int | tuple[int] | tuple[int, int] | tuple[int, int, int]

class DeviceInfo(TypedDict):
    index: int
    platform: str
    name: str
    vendor: str
    type: Literal["gpu", "cpu", "accelerator", "other"]
    memory: int
    max_alloc: int
    compute_units: int
    max_work_group_size: int
    fp64: bool
    version: str
    driver: str

class RuntimeInfo(TypedDict):
    library: str
    loaded: bool
    error: str

class Stats(TypedDict):
    launches: int
    bytes_to_device: int
    bytes_from_device: int
    live_objects: int

class Error(RuntimeError):
    """An OpenCL call failed."""
    code: int

class BuildError(Error):
    """A program did not compile."""
    log: str

class NoDeviceError(Error):
    """No OpenCL runtime, no device, or none matching the selection."""

class Context:
    """A device and its command queue, pinned to the main interpreter."""

    def __init__(self, device: int | str | None = None,
                 dtype: Literal["float64", "float32"] | None = None) -> None: ...
    def program(self, source: str, options: str = "") -> Program: ...
    def buffer(self, source: Matrix | int | tuple[int, int],
               dtype: DType | None = None) -> Buffer: ...
    def run(self, kernel: Kernel, global_size: Work,
            *args: int | float | Matrix | Buffer,
            local_size: Work | None = None) -> None: ...
    def finish(self) -> None: ...
    def close(self) -> None: ...
    @property
    def device(self) -> DeviceInfo: ...
    @property
    def dtype(self) -> Literal["float64", "float32"]: ...
    @property
    def fp64(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def stats(self) -> Stats: ...

class Program:
    """A compiled program (Context.program())."""

    def kernel(self, name: str) -> Kernel: ...
    def release(self) -> None: ...
    @property
    def kernel_names(self) -> list[str]: ...
    @property
    def context(self) -> Context: ...
    @property
    def released(self) -> bool: ...

class Kernel:
    """A kernel of a Program; launched by Context.run()."""

    def release(self) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def num_args(self) -> int: ...
    @property
    def arg_types(self) -> list[tuple[str, str]]: ...
    @property
    def work_group_size(self) -> int: ...
    @property
    def context(self) -> Context: ...
    @property
    def released(self) -> bool: ...

class Buffer:
    """Device memory of one Context (Context.buffer())."""

    def read(self, out: Matrix | None = None) -> Matrix: ...
    def write(self, source: Matrix) -> None: ...
    def release(self) -> None: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def size(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def dtype(self) -> DType: ...
    @property
    def context(self) -> Context: ...
    @property
    def released(self) -> bool: ...

def devices() -> list[DeviceInfo]: ...
def runtime() -> RuntimeInfo: ...
def open(device: int | str | None = None,
         dtype: Literal["float64", "float32"] | None = None) -> PinnedCown[Context]: ...
