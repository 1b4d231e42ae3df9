"""The distributions a plugin author meets (issue 27; docs/packaging.md):
``scripts/build_dists.sh DIR`` writes bocpy-runtime's wheel and sdist and the
headers-only wheel bocpy-runtime-dev; a plugin builds from DIR alone, offline
and on another CPython than the one that built the runtime wheel;
``find_package(bocpy)`` works in an activated venv with no ``-D`` and steers
FindPython to bocpy's interpreter; ``bocpy-config`` prints what builds need;
the template and every in-tree plugin build-require only bocpy-runtime-dev.

Slow parts share one session fixture (``dists``: one run of
build_dists.sh with CPython 3.12, which downloads scikit-build-core's wheels
from the package index once) and one fresh venv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from test_abi_support import REPO, TEMPLATE, find_python, find_tool

pytestmark = pytest.mark.timeout(900)

VERSION = re.search(r"project\(bocpy VERSION ([0-9]+\.[0-9]+\.[0-9]+)",
                    (REPO / "CMakeLists.txt").read_text()).group(1)
_HEADER = (REPO / "abi" / "include" / "bocpy" / "abi_header.h").read_text()
ABI_MAJOR = int(re.search(r"^#define BOCPY_ABI_MAJOR ([0-9]+)$", _HEADER, re.M).group(1))
ABI_MINOR = int(re.search(r"^#define BOCPY_ABI_MINOR ([0-9]+)$", _HEADER, re.M).group(1))
REQUIRES_DEV = f"bocpy-runtime-dev>={VERSION},<{ABI_MAJOR + 1}"
REQUIRES_RUNTIME = f"bocpy-runtime>={VERSION},<{ABI_MAJOR + 1}"


def run(cmd: list, *, timeout: float = 600, **kw) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                         timeout=timeout, **kw)
    assert res.returncode == 0, (f"{' '.join(map(str, cmd))} failed:\n"
                                 f"{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


def need(name: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.fail(f"{name} is missing: pip install -r scripts/requirements.txt")
    return path


def python(ver: str) -> str:
    py = find_python(ver)
    if py is None:
        pytest.fail(f"CPython {ver} not found: run scripts/test.sh's set-up (bocpy_venv)")
    return py


def tool_dirs() -> list[str]:
    """Directories of real cmake and ninja executables for a build in pip's
    isolated environment, where the PyPI packages' Python launchers (in a
    venv's bin/) cannot import their own package."""
    dirs = []
    for name in ("cmake", "ninja"):
        try:
            module = __import__(name)
            found = Path(getattr(module, "CMAKE_BIN_DIR", None) or module.BIN_DIR) / name
        except (ImportError, AttributeError):
            found = Path(need(name))
        assert found.is_file(), found
        if found.read_bytes()[:4] != b"\x7fELF":
            pytest.fail(f"{found} is not an executable binary")
        dirs.append(str(found.parent))
    return dirs


def offline_env(**extra: str) -> dict[str, str]:
    """No pip configuration (this machine's pip.conf adds find-links and
    indexes) and no PYTHONPATH: pip sees only what the command names."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PIP_NO_BUILD_ISOLATION") and not k.startswith("PIP_FIND")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dists")
    run(["bash", REPO / "scripts" / "build_dists.sh", "--python", python("3.12"),
         "--with-build-backend", out], timeout=1200)
    return out


@pytest.fixture(scope="session")
def dev_venv(tmp_path_factory: pytest.TempPathFactory, dists: Path) -> Path:
    """A fresh CPython 3.12 venv with bocpy-runtime-dev only (from DIR)."""
    root = tmp_path_factory.mktemp("devvenv") / "venv"
    base = run([python("3.12"), "-c", "import sys; print(sys._base_executable)"]).stdout.strip()
    run([base, "-m", "venv", root])
    run([root / "bin" / "python", "-m", "pip", "install", "-q", "--no-index", "--find-links",
         dists, "bocpy-runtime-dev"], env=offline_env())
    return root


# ---- what build_dists.sh writes ------------------------------------------------

def test_build_dists_writes_the_runtime_wheel_its_sdist_and_the_headers_wheel(
        dists: Path) -> None:
    ours = sorted(p.name for p in dists.iterdir() if p.name.startswith("bocpy"))
    assert ours == [f"bocpy_runtime-{VERSION}-cp312-cp312-linux_x86_64.whl",
                    f"bocpy_runtime-{VERSION}.tar.gz",
                    f"bocpy_runtime_dev-{VERSION}-py3-none-any.whl"], ours
    runtime = zipfile.ZipFile(dists / ours[0])
    dev = zipfile.ZipFile(dists / ours[2])
    names = set(dev.namelist())
    info = f"bocpy_runtime_dev-{VERSION}.dist-info/"
    meta = dev.read(info + "METADATA").decode()
    assert f"Name: bocpy-runtime-dev\nVersion: {VERSION}\n" in meta
    assert "Root-Is-Purelib: true\nTag: py3-none-any\n" in dev.read(info + "WHEEL").decode()
    eps = dev.read(info + "entry_points.txt").decode()
    for line in ("bocpy-config = bocpy_dev.__main__:main", "[cmake.prefix]\nbocpy = bocpy_dev",
                 "[pkg_config]\nbocpy = bocpy_dev.lib.pkgconfig"):
        assert line in eps, eps
    assert info + "licenses/LICENSE" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c"))]  # headers only
    # The same headers and build files as the runtime wheel, byte for byte.
    shared = ["include/bocpy/abi_header.h", "include/bocpy/bocpy.h", "lib/pkgconfig/bocpy.pc",
              "lib/cmake/bocpy/bocpyConfig.cmake", "lib/cmake/bocpy/bocpyConfigVersion.cmake",
              "lib/cmake/bocpy/BocpyPlugin.cmake"]
    for rel in shared:
        assert dev.read("bocpy_dev/" + rel) == runtime.read("bocpy/" + rel), rel
    # Each has a forwarding config where CMake's search finds it in a venv.
    for z, dist, name in ((dev, "bocpy_runtime_dev", "bocpy-runtime-dev"),
                          (runtime, "bocpy_runtime", "bocpy-runtime")):
        fwd = f"{dist}-{VERSION}.data/data/share/cmake/{name}/bocpyConfig.cmake"
        assert fwd in z.namelist(), z.namelist()
    src = dev.read(info + "RECORD").decode()
    assert f"bocpy_dev/_info.py," in src


def test_template_and_every_plugin_build_require_only_the_headers(dists: Path) -> None:
    import tomllib

    projects = [TEMPLATE / "{{cookiecutter.project_slug}}",
                *sorted(p.parent for p in (REPO / "plugins").glob("*/pyproject.toml"))]
    assert len(projects) >= 3
    for project in projects:
        data = tomllib.loads((project / "pyproject.toml").read_text())
        assert data["build-system"]["requires"] == ["scikit-build-core>=0.10", REQUIRES_DEV], project
        assert data["project"]["dependencies"] == [REQUIRES_RUNTIME], project


# ---- a plugin from DIR alone, offline, on another CPython ------------------------

def test_template_builds_offline_from_dir_on_another_cpython(
        dists: Path, tmp_path: Path) -> None:
    """build_dists.sh ran on 3.12 (DIR holds a cp312 runtime wheel); pip on
    3.13 builds the template with build isolation from DIR alone: it needs
    only the pure headers wheel, no runtime wheel for its own CPython and
    no compile of the runtime's sdist."""
    cookiecutter = need("cookiecutter")
    run([cookiecutter, "--no-input", "-o", tmp_path, TEMPLATE, "project_name=Zip tools"])
    project = tmp_path / "zip_tools"
    py313 = python("3.13")
    env = offline_env(PATH=os.pathsep.join([*tool_dirs(), os.environ["PATH"]]))
    res = run([py313, "-m", "pip", "wheel", "-v", ".", "--no-index", "--find-links", dists,
               "--no-deps", "-w", tmp_path / "dist"], cwd=project, env=env, timeout=900)
    installed = res.stdout + res.stderr
    assert "bocpy-runtime-dev" in installed or "bocpy_runtime_dev" in installed
    assert "bocpy_runtime-" + VERSION + ".tar.gz" not in installed  # the sdist was not built
    [wheel] = sorted((tmp_path / "dist").glob("zip_tools-*.whl"))
    assert wheel.name == "zip_tools-0.1.0-cp312-abi3-linux_x86_64.whl", wheel.name
    with zipfile.ZipFile(wheel) as z:
        meta = z.read("zip_tools-0.1.0.dist-info/METADATA").decode()
        z.extractall(tmp_path / "unpacked")
    requires = [r for r in re.findall(r"^Requires-Dist: (.*)$", meta, re.M) if "extra ==" not in r]
    assert len(requires) == 1 and requires[0].replace(" ", "").startswith("bocpy-runtime")
    from packaging.requirements import Requirement

    spec = Requirement(requires[0]).specifier
    assert VERSION in spec and f"{ABI_MAJOR + 1}.0" not in spec and f"{ABI_MAJOR}.9" in spec
    # The module built on 3.13 against the headers runs with the 3.13 runtime.
    runtime = REPO / ".venv" / "py3.13" / "bin" / "python"
    py = str(runtime) if runtime.exists() else py313
    out = run([py, project / "tests" / "test_zip_tools.py"], cwd=tmp_path,
              env={**offline_env(), "PYTHONPATH": str(tmp_path / "unpacked")}, timeout=300).stdout
    assert out.count(": ok") == 3, out


# ---- CMake outside pip -------------------------------------------------------------

FOUR_LINES = """\
cmake_minimum_required(VERSION 3.26)
project(four_lines LANGUAGES C)
find_package(bocpy CONFIG REQUIRED)     # also finds Python (Development.SABIModule)
bocpy_add_plugin(NAME four_lines SOURCES plugin.c DESTINATION .)
"""
PLUGIN_C = """\
#include <bocpy/bocpy.h>
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "four_lines", NULL, 0, NULL};
PyMODINIT_FUNC PyInit_four_lines(void) { return PyModuleDef_Init(&def); }
"""


def four_lines(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(FOUR_LINES)
    (src / "plugin.c").write_text(PLUGIN_C)
    return src


def cmake_build(src: Path, build: Path, env: dict[str, str], *args: str) -> str:
    cmake, ninja = need("cmake"), need("ninja")
    out = run([cmake, "-S", src, "-B", build, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}",
               *args], env=env, cwd=src).stdout
    run([cmake, "--build", build], env=env)
    assert list(build.glob("four_lines*.abi3.so")), sorted(p.name for p in build.iterdir())
    return out


def activated(venv: Path) -> dict[str, str]:
    """The environment of a shell that ran `source <venv>/bin/activate`,
    with no other Python on PATH than the system's."""
    env = offline_env()
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    env.pop("PYTHONHOME", None)
    return env


def test_find_package_in_an_activated_venv_needs_no_D(dev_venv: Path, tmp_path: Path,
                                                      dists: Path) -> None:
    # 1. only the headers distribution in the venv
    out = cmake_build(four_lines(tmp_path), tmp_path / "b1", activated(dev_venv))
    assert "Could not find a package configuration file" not in out
    # 2. only the runtime (a second venv: the cp312 wheel from DIR)
    venv = tmp_path / "rt"
    base = run([python("3.12"), "-c", "import sys; print(sys._base_executable)"]).stdout.strip()
    run([base, "-m", "venv", venv])
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-index", "--no-deps",
         *sorted(dists.glob("bocpy_runtime-*-cp312-*.whl"))], env=offline_env())
    cmake_build(tmp_path / "src", tmp_path / "b2", activated(venv))


def test_bocpy_config_steers_findpython_to_its_interpreter(dev_venv: Path,
                                                           tmp_path: Path) -> None:
    """-Dbocpy_DIR only, no venv on PATH, no -DPython_EXECUTABLE: FindPython
    gets the interpreter bocpy-runtime-dev is installed for (not whatever
    python3 is first on PATH)."""
    cmakedir = run([dev_venv / "bin" / "bocpy-config", "--cmakedir"]).stdout.strip()
    env = offline_env(PATH=f"/usr/bin{os.pathsep}/bin")
    env.pop("VIRTUAL_ENV", None)
    out = cmake_build(four_lines(tmp_path), tmp_path / "b", env, f"-Dbocpy_DIR={cmakedir}")
    ver = run([dev_venv / "bin" / "python", "-c",
               "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.strip()
    assert f"bocpy: Python {dev_venv}/bin/python{ver} (the interpreter bocpy is installed for)" \
        in out, out
    cache = (tmp_path / "b" / "CMakeCache.txt").read_text()
    assert f"{dev_venv}/bin/python{ver}" in cache


# ---- bocpy-config ---------------------------------------------------------------

def test_bocpy_config_prints_what_builds_need(dev_venv: Path) -> None:
    exe = dev_venv / "bin" / "bocpy-config"
    opts = ("--cmakedir", "--pkgconfigdir", "--includes", "--cflags", "--ldflags",
            "--extension-suffix", "--abi", "--requires", "--version")
    lines = run([exe, *opts], env=offline_env()).stdout.splitlines()
    out = dict(zip(opts, lines))
    assert len(lines) == len(opts)
    assert (Path(out["--cmakedir"]) / "bocpyConfig.cmake").is_file()
    assert (Path(out["--pkgconfigdir"]) / "bocpy.pc").is_file()
    inc = out["--includes"].split()
    assert len(inc) == 2 and (Path(inc[1][2:]) / "bocpy" / "bocpy.h").is_file()
    assert Path(inc[0][2:], "Python.h").is_file()
    assert out["--cflags"] == out["--includes"] + " -DPy_LIMITED_API=0x030c0000"
    assert out["--ldflags"] == "-shared"
    assert out["--extension-suffix"] == ".abi3.so"
    assert out["--abi"] == f"{ABI_MAJOR}.{ABI_MINOR}"
    assert out["--requires"] == REQUIRES_RUNTIME
    assert out["--version"] == VERSION
    # the same as `python -m bocpy_dev`, and no option: the help, status 2
    same = run([dev_venv / "bin" / "python", "-m", "bocpy_dev", "--abi"], env=offline_env())
    assert same.stdout.strip() == out["--abi"]
    bare = subprocess.run([str(exe)], capture_output=True, text=True, env=offline_env())
    assert bare.returncode == 2 and "--extension-suffix" in bare.stdout
    # a plain cc build with those flags makes an importable module
    cc = shutil.which("cc")
    assert cc, "a C compiler is needed"
    work = dev_venv.parent / "cc"
    work.mkdir(exist_ok=True)
    (work / "plugin.c").write_text(PLUGIN_C)
    so = work / ("four_lines" + out["--extension-suffix"])
    run([cc, "-std=c11", "-fPIC", "-fvisibility=hidden", *out["--cflags"].split(),
         "-o", so, work / "plugin.c", *out["--ldflags"].split()])
    run([dev_venv / "bin" / "python", "-c", "import four_lines"], cwd=work, env=offline_env())


def test_pkg_config_and_cmake_prefix_entry_points_resolve(dev_venv: Path) -> None:
    code = textwrap.dedent("""
        import importlib, importlib.metadata as md, os
        for group in ("cmake.prefix", "pkg_config"):
            [ep] = [e for e in md.entry_points(group=group) if e.name == "bocpy"]
            mod = importlib.import_module(ep.value)
            print(group, list(mod.__path__)[0])
        """)
    out = run([dev_venv / "bin" / "python", "-c", code], env=offline_env()).stdout.split("\n")
    prefix = out[0].split(" ", 1)[1]
    pc = out[1].split(" ", 1)[1]
    assert (Path(prefix) / "lib" / "cmake" / "bocpy" / "bocpyConfig.cmake").is_file()
    assert (Path(pc) / "bocpy.pc").is_file()
