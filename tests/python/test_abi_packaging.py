"""What plugin authors build against, and what they get: bocpy.get_include()
and friends, the relocatable bocpy.pc, the CMake package, out-of-tree builds
of the template both ways, one abi3 binary for 3.12 and 3.13, and no symbol
outside the stable ABI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import bocpy
import bocpy._abi

from test_abi_support import (
    REPO,
    cc_plugin,
    compiler,
    find_python,
    find_tool,
    render_template,
    run_script,
)

BOCPY_PARENT = str(Path(bocpy.__file__).resolve().parents[1])

# The stable ABI itself exports a few _Py-prefixed symbols, which the
# limited-API headers' macros reference (3.12: Py_INCREF/Py_DECREF call
# _Py_IncRef/_Py_DecRef; Py_None & co. are data symbols).  Nothing else
# starting with _Py may appear.
STABLE_ABI_PRIVATE_NAMES = {
    "_Py_IncRef", "_Py_DecRef", "_Py_Dealloc", "_Py_NoneStruct",
    "_Py_NotImplementedStruct", "_Py_TrueStruct", "_Py_FalseStruct",
    "_Py_EllipsisObject",
}
# Public but not in the limited API: what a plugin must get from the table.
NOT_LIMITED = {
    "PyInterpreterState_Main", "PyThreadState_GetUnchecked",
    "PyInterpreterState_GetID_Unchecked", "Py_NewInterpreterFromConfig",
    "PyUnicode_AsUTF8", "PyCode_GetNumFree",
}


def env_with_bocpy(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (extra.pop("PYTHONPATH", ""), BOCPY_PARENT) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def undefined_symbols(so: Path) -> list[str]:
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not available")
    out = subprocess.run([nm, "-D", "--undefined-only", str(so)], check=True,
                         capture_output=True, text=True).stdout
    return [line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()]


def assert_stable_abi_only(so: Path) -> None:
    """An abi3 module (built for 3.12+) uses the stable ABI only; a plugin
    built on 3.10/3.11 is a version-specific module, which still takes from
    the table what is not in the limited API."""
    syms = undefined_symbols(so)
    if not so.name.endswith(".abi3.so"):
        assert not bocpy._abi.ABI3 and so.name.endswith(bocpy._abi.plugin_suffix()), so.name
        assert not NOT_LIMITED & set(syms), NOT_LIMITED & set(syms)
        return
    private = [s for s in syms if s.startswith("_Py") and s not in STABLE_ABI_PRIVATE_NAMES]
    assert private == [], f"{so.name} uses private CPython symbols: {private}"
    assert not [s for s in syms if s.startswith("PyUnstable_")]
    assert not NOT_LIMITED & set(syms), NOT_LIMITED & set(syms)


# ---- where things are ---------------------------------------------------------

def test_locations() -> None:
    inc = Path(bocpy.get_include())
    assert (inc / "bocpy" / "bocpy.h").is_file()
    assert (inc / "bocpy" / "abi_header.h").is_file()
    assert (Path(bocpy.get_pkgconfig_dir()) / "bocpy.pc").is_file()
    assert (Path(bocpy.get_cmake_dir()) / "bocpyConfig.cmake").is_file()
    assert (Path(bocpy.get_cmake_dir()) / "bocpyConfigVersion.cmake").is_file()
    assert bocpy.get_sources() == []
    for name in ("get_include", "get_pkgconfig_dir", "get_cmake_dir", "get_sources"):
        assert name in bocpy.__all__


def test_installed_headers_are_the_sources() -> None:
    inc = Path(bocpy.get_include()) / "bocpy"
    for name in ("bocpy.h", "abi_header.h"):
        assert (inc / name).read_text() == (REPO / "abi" / "include" / "bocpy" / name).read_text()


def pkg_config(args: list[str], pc_dir: str) -> str:
    tool = shutil.which("pkg-config")
    if tool is None:
        pytest.skip("pkg-config not available")
    return subprocess.run([tool, *args, "bocpy"], check=True, capture_output=True, text=True,
                          env={**os.environ, "PKG_CONFIG_PATH": pc_dir}).stdout.strip()


def test_pkg_config_file_is_relocatable(tmp_path: Path) -> None:
    cflags = pkg_config(["--cflags-only-I"], bocpy.get_pkgconfig_dir())
    inc = Path(cflags.removeprefix("-I"))
    assert inc.resolve() == Path(bocpy.get_include()).resolve()
    version = pkg_config(["--modversion"], bocpy.get_pkgconfig_dir())
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", version)
    # moved elsewhere, it still points next to itself
    pkg = Path(bocpy.get_include()).parent
    moved = tmp_path / "moved" / "bocpy"
    shutil.copytree(pkg / "include", moved / "include")
    shutil.copytree(pkg / "lib", moved / "lib")
    cflags = pkg_config(["--cflags-only-I"], str(moved / "lib" / "pkgconfig"))
    assert Path(cflags.removeprefix("-I")).resolve() == (moved / "include").resolve()


def test_headers_compile_with_and_without_the_limited_api(tmp_path: Path) -> None:
    cc = compiler()
    if cc is None:
        pytest.skip("no C compiler")
    import sysconfig

    src = tmp_path / "h.c"
    src.write_text("#include <bocpy/bocpy.h>\nint main(void) { return BOCPY_ABI - 1; }\n")
    for flags in (["-DPy_LIMITED_API=0x030C0000"], []):
        res = subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes",
                              "-Wmissing-prototypes", "-Werror", "-fsyntax-only", *flags,
                              f"-I{sysconfig.get_path('include')}", f"-I{bocpy.get_include()}",
                              str(src)], capture_output=True, text=True)
        if flags and not bocpy._abi.ABI3:
            # 3.10/3.11: no abi3 plugin there; bocpy/compat.h says so
            assert res.returncode != 0
            assert "version-specific module" in res.stderr, res.stderr
        else:
            assert res.returncode == 0, res.stderr


# ---- out-of-tree builds of the template --------------------------------------

USE_COUNTER = textwrap.dedent(
    """
    import {slug} as plug
    from bocpy import Cown, when, wait
    assert plug.__file__.endswith({suffix!r}), plug.__file__
    c = Cown(plug.Counter(1))
    for _ in range(100):
        @when(c)
        def bump(c):
            c.value.add(1)
    r = plug.add_later(c, 1000)
    wait()
    print("value", c.value.value, plug.abi_info()["version"])
    """
)


def check_built(module_dir: Path, slug: str) -> None:
    so = next(module_dir.glob(f"{slug}*.so"))
    assert_stable_abi_only(so)
    res = run_script(USE_COUNTER.format(slug=slug, suffix=bocpy._abi.plugin_suffix()),
                     env={"PYTHONPATH": str(module_dir)})
    assert res.returncode == 0, res.stderr
    assert "value 1101 bocpy" in res.stdout


def test_out_of_tree_build_with_pkg_config(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None or compiler() is None or shutil.which("pkg-config") is None:
        pytest.skip("make, a C compiler and pkg-config are needed")
    project = render_template(tmp_path, "pc_plugin")
    res = subprocess.run([make, f"PYTHON={sys.executable}", "CFLAGS=-O1 -Wall -Wextra -Werror"],
                         cwd=project, env=env_with_bocpy(), capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "pkgconfig/../../include" in res.stdout  # the flags came from bocpy.pc
    check_built(project, "pc_plugin")


def test_template_makefile_links_a_system_library_and_tests_from_anywhere(
        tmp_path: Path) -> None:
    """LDLIBS reaches the link line (a plugin wrapping SQLite needs
    -lsqlite3, or its import fails with an undefined symbol), and `make -C`
    from another directory runs the tests ($(CURDIR), not `.`)."""
    make, readelf = shutil.which("make"), shutil.which("readelf")
    if make is None or readelf is None or compiler() is None:
        pytest.skip("make, readelf and a C compiler are needed")
    project = render_template(tmp_path, "lib_plugin")
    res = subprocess.run([make, "-C", str(project), f"PYTHON={sys.executable}",
                          "LDLIBS=-Wl,--no-as-needed -lm", "test"],
                         cwd=tmp_path, env=env_with_bocpy(), capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "-shared -o lib_plugin.abi3.so src/plugin.c  -Wl,--no-as-needed -lm" in res.stdout
    assert res.stdout.count(": ok") == 3, res.stdout
    needed = subprocess.run([readelf, "-d", str(project / "lib_plugin.abi3.so")],
                            capture_output=True, text=True, check=True).stdout
    assert re.search(r"NEEDED.*\[libm\.so", needed), needed
    assert f'PYTHONPATH="{project}"' in res.stdout


def test_out_of_tree_build_with_find_package(tmp_path: Path) -> None:
    cmake = find_tool("cmake")
    ninja = find_tool("ninja")
    if cmake is None or ninja is None:
        pytest.skip("cmake and ninja are needed")
    project = render_template(tmp_path, "cmake_plugin")
    build = tmp_path / "build"
    env = env_with_bocpy()
    res = subprocess.run([cmake, "-S", str(project), "-B", str(build), "-G", "Ninja",
                          f"-DCMAKE_MAKE_PROGRAM={ninja}", f"-DPython_EXECUTABLE={sys.executable}",
                          f"-Dbocpy_DIR={bocpy.get_cmake_dir()}", "-DCMAKE_C_FLAGS=-Werror"],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "bocpy ABI 1." in res.stdout
    res = subprocess.run([cmake, "--build", str(build)], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    check_built(build, "cmake_plugin")


def test_find_package_without_bocpy_fails_clearly(tmp_path: Path) -> None:
    cmake = find_tool("cmake")
    if cmake is None:
        pytest.skip("cmake is needed")
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.26)\nproject(x LANGUAGES NONE)\n"
        "find_package(bocpy 99 CONFIG REQUIRED)\n")
    res = subprocess.run([cmake, "-S", str(tmp_path), "-B", str(tmp_path / "b"),
                          f"-Dbocpy_DIR={bocpy.get_cmake_dir()}"], capture_output=True, text=True)
    assert res.returncode != 0
    assert "bocpy" in res.stderr and "99" in res.stderr  # version mismatch named


# ---- a newer plugin on an older core ------------------------------------------

def newer_headers(tmp_path: Path) -> Path:
    """A copy of the headers that claims one more minor (as a future bocpy's
    headers would), with one more entry at the end of the table."""
    inc = tmp_path / "future" / "include"
    shutil.copytree(Path(bocpy.get_include()), inc)
    hdr = inc / "bocpy" / "abi_header.h"
    text = hdr.read_text()
    minor = int(re.search(r"#define BOCPY_ABI_MINOR (\d+)", text).group(1))
    count = int(re.search(r"#define BOCPY_ABI_ENTRY_COUNT (\d+)", text).group(1))
    text = text.replace(f"#define BOCPY_ABI_MINOR {minor}\n", f"#define BOCPY_ABI_MINOR {minor + 1}\n")
    text = text.replace(f"#define BOCPY_ABI_ENTRY_COUNT {count}\n",
                        f"#define BOCPY_ABI_ENTRY_COUNT {count + 1}\n")
    text = text.replace("  default:\n", f"  case {minor + 1}:\n    return {count + 1}u;\n  default:\n")
    hdr.write_text(text)
    main = inc / "bocpy" / "bocpy.h"
    main.write_text(main.read_text().replace(
        "/* END GENERATED */\n} bocpy_abi;",
        "  int (*future_entry)(void);\n/* END GENERATED */\n} bocpy_abi;"))
    return inc


@pytest.mark.parametrize("target", [0, 1])
def test_newer_plugin_on_older_core(tmp_path: Path, target: int) -> None:
    if compiler() is None:
        pytest.skip("no C compiler")
    core_minor = bocpy._core._abi_info()["minor"]
    inc = newer_headers(tmp_path)
    project = render_template(tmp_path, f"future{target}")
    defines = (f"BOCPY_TARGET_MINOR={core_minor + target}",)
    cc_plugin(project / "src" / "plugin.c", tmp_path, f"future{target}", [str(inc)], defines)
    code = textwrap.dedent(f"""
        try:
            import future{target} as p
        except ImportError as e:
            print("ImportError:", e)
        else:
            print("loaded", p.abi_info()["headers_minor"])
        """)
    res = run_script(code, env={"PYTHONPATH": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    if target == 0:  # needs only what the core has: loads
        assert f"loaded {core_minor + 1}" in res.stdout
    else:
        assert "bocpy core too old" in res.stdout
        assert f"needs bocpy ABI 1.{core_minor + 1} or newer" in res.stdout
        assert f"provides ABI 1.{core_minor}" in res.stdout


# ---- the shipped plugin: abi3, stable ABI only, one binary for 3.12 and 3.13 --

def test_files_plugin_uses_the_stable_abi_only() -> None:
    from bocpy.plugins import files

    assert_stable_abi_only(Path(files.__file__))


CROSS = textwrap.dedent(
    """
    import sys, tempfile, os
    import bocpy.plugins.files as files
    from bocpy import when, wait
    assert files.__file__ == {plugin!r}, files.__file__
    path = os.path.join(tempfile.mkdtemp(), "x.log")
    log = files.open(path, "w")
    for i in range(50):
        @when()
        def rec():
            return f"{{i}}\\n"
        files.write_after(log, rec)
    wait()
    del log
    with open(path) as f:
        assert f.read().split() == [str(i) for i in range(50)]
    print("ok", sys.version_info[:2])
    """
)


def test_one_abi3_binary_loads_on_312_and_313(tmp_path: Path) -> None:
    py312, py313 = find_python("3.12"), find_python("3.13")
    cmake, ninja = find_tool("cmake"), find_tool("ninja")
    if not (py312 and py313 and cmake and ninja):
        pytest.skip("needs CPython 3.12 and 3.13, cmake and ninja")
    builds = {}
    for ver, py, targets in (("3.12", py312, ["files", "_core"]), ("3.13", py313, ["_core"])):
        b = tmp_path / f"build{ver}"
        for cmd in ([cmake, "-S", str(REPO), "-B", str(b), "-G", "Ninja",
                     f"-DCMAKE_MAKE_PROGRAM={ninja}", f"-DPython_EXECUTABLE={py}",
                     "-DCMAKE_BUILD_TYPE=Release"],
                    [cmake, "--build", str(b), "--target", *targets]):
            res = subprocess.run(cmd, capture_output=True, text=True)
            assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        builds[ver] = b
    # one package holding both cores and the plugin built ONCE, against 3.12
    pkg = tmp_path / "site" / "bocpy"
    shutil.copytree(REPO / "bocpy", pkg,
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    for b in builds.values():
        for so in (b / "core").glob("_core*.so"):
            shutil.copy(so, pkg)
    plugin = next((builds["3.12"] / "plugins" / "files").glob("files*.so"))
    assert plugin.name == "files.abi3.so"
    assert_stable_abi_only(plugin)
    (pkg / "plugins").mkdir(exist_ok=True)
    shutil.copy(plugin, pkg / "plugins" / plugin.name)
    target = str(pkg / "plugins" / plugin.name)
    for py, ver in ((py312, "(3, 12)"), (py313, "(3, 13)")):
        res = subprocess.run([py, "-c", CROSS.format(plugin=target)], cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(pkg.parent)},
                             capture_output=True, text=True, timeout=180)
        assert res.returncode == 0, res.stderr
        assert f"ok {ver}" in res.stdout


# ---- python -m bocpy, and what the CMake package and bocpy.pc carry -----------

def bocpy_cli(*args: str) -> subprocess.CompletedProcess:
    # -P (3.11+): the working directory, bocpy's include dir, must not shadow bocpy
    safe = ["-P", "-m", "bocpy"] if sys.version_info >= (3, 11) else [
        "-c", "import sys, runpy; del sys.path[0]; sys.argv[0] = 'bocpy'; "
        "runpy.run_module('bocpy', run_name='__main__', alter_sys=True)"]
    return subprocess.run([sys.executable, *safe, *args], capture_output=True,
                          text=True, env=env_with_bocpy(), cwd=Path(bocpy.get_include()))


def test_python_m_bocpy_prints_what_builds_need() -> None:
    import sysconfig

    py_inc = sysconfig.get_path("include")
    out = {opt: bocpy_cli(opt).stdout.strip() for opt in
           ("--includes", "--cflags", "--cmakedir", "--pkgconfigdir", "--version")}
    assert out["--includes"] == f"-I{py_inc} -I{bocpy.get_include()}"
    limited = " -DPy_LIMITED_API=0x030c0000" if bocpy._abi.ABI3 else ""  # abi3: 3.12+
    assert out["--cflags"] == out["--includes"] + limited
    assert out["--cmakedir"] == bocpy.get_cmake_dir()
    assert out["--pkgconfigdir"] == bocpy.get_pkgconfig_dir()
    assert out["--version"] == bocpy.__version__
    version = re.search(r"project\(bocpy VERSION ([0-9.]+)", (REPO / "CMakeLists.txt").read_text())
    assert bocpy.__version__ == version.group(1)  # one version, written once
    # several options: one line each, in order
    res = bocpy_cli("--cmakedir", "--version")
    assert res.stdout.splitlines() == [out["--cmakedir"], out["--version"]]
    # no option: the help, and a non-zero status
    res = bocpy_cli()
    assert res.returncode == 2 and "--cmakedir" in res.stdout
    res = bocpy_cli("--nonsense")
    assert res.returncode == 2 and "unrecognized arguments: --nonsense" in res.stderr


def test_python_m_bocpy_abi_lists_the_capabilities() -> None:
    from test_abi_support import gen_abi

    version, caps = bocpy_cli("--abi").stdout.splitlines()
    info = bocpy._core._abi_info()
    assert version == f"{info['major']}.{info['minor']}"
    reported = dict(item.split("=") for item in caps.split())
    # every capability the manifest documents, none else, each with a version
    manifest = {e.name: e for e in gen_abi().load_manifest(REPO).entries}["capability"]
    documented = re.findall(r'"(\w+)"', manifest.summary)
    assert sorted(reported) == sorted(documented)
    assert all(int(v) >= 1 for v in reported.values())


def test_headers_target_and_pc_file_carry_the_limited_api(tmp_path: Path) -> None:
    cmake, ninja = find_tool("cmake"), find_tool("ninja")
    assert cmake and ninja, "cmake and ninja come from scripts/requirements.txt"
    cflags = pkg_config(["--cflags"], bocpy.get_pkgconfig_dir()).split()
    if bocpy._abi.ABI3:
        assert "-DPy_LIMITED_API=0x030c0000" in cflags
        # a plain library (no USE_SABI) linked with bocpy::headers gets the define
        check = ("#ifndef Py_LIMITED_API\n#error bocpy::headers did not set Py_LIMITED_API\n#endif\n"
                 "#if Py_LIMITED_API != 0x030c0000\n#error wrong Py_LIMITED_API\n#endif\n")
        python = "Development.SABIModule)", "Python::SABIModule"
    else:  # 3.10/3.11: version-specific plugins, no Py_LIMITED_API anywhere
        assert not [f for f in cflags if "Py_LIMITED_API" in f], cflags
        check = "#ifdef Py_LIMITED_API\n#error bocpy::headers set Py_LIMITED_API below 3.12\n#endif\n"
        python = "Development.Module)", "Python::Module"
    (tmp_path / "x.c").write_text(
        check + "#include <Python.h>\n#include <bocpy/bocpy.h>\nint x(void);\nint x(void) { return 0; }\n")
    (tmp_path / "CMakeLists.txt").write_text(textwrap.dedent(f"""
        cmake_minimum_required(VERSION 3.26)
        project(x LANGUAGES C)
        find_package(Python 3.10 REQUIRED COMPONENTS Interpreter {python[0]}
        find_package(bocpy CONFIG REQUIRED)
        add_library(x STATIC x.c)
        target_link_libraries(x PRIVATE bocpy::headers {python[1]})
        """))
    cmakedir = bocpy_cli("--cmakedir").stdout.strip()
    for cmd in ([cmake, "-S", str(tmp_path), "-B", str(tmp_path / "b"), "-G", "Ninja",
                 f"-DCMAKE_MAKE_PROGRAM={ninja}", f"-DPython_EXECUTABLE={sys.executable}",
                 f"-Dbocpy_DIR={cmakedir}"],
                [cmake, "--build", str(tmp_path / "b")]):
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def test_cmakedir_feeds_a_plain_find_package_build_of_a_plugin(tmp_path: Path) -> None:
    """plugins/files/CMakeLists.txt on its own: find_package(bocpy) with the
    directory `python -m bocpy --cmakedir` prints, bocpy_add_plugin() from the
    installed package, -Werror on; the binary is abi3 and works."""
    cmake, ninja = find_tool("cmake"), find_tool("ninja")
    assert cmake and ninja, "cmake and ninja come from scripts/requirements.txt"
    cmakedir = bocpy_cli("--cmakedir").stdout.strip()
    build = tmp_path / "build"
    for cmd in ([cmake, "-S", str(REPO / "plugins" / "files"), "-B", str(build), "-G", "Ninja",
                 f"-DCMAKE_MAKE_PROGRAM={ninja}", f"-DPython_EXECUTABLE={sys.executable}",
                 f"-Dbocpy_DIR={cmakedir}", "-DBOCPY_WERROR=ON",
                 "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"],
                [cmake, "--build", str(build)]):
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    commands = (build / "compile_commands.json").read_text()
    assert "-Werror" in commands
    assert ("-DPy_LIMITED_API=0x030c0000" in commands) == bocpy._abi.ABI3  # abi3: 3.12+
    assert str(Path(cmakedir).parents[2] / "include") in commands  # the installed headers
    plugin = build / f"files{bocpy._abi.plugin_suffix()}"
    assert_stable_abi_only(plugin)
    # a copy of the installed package with this build as its files plugin
    pkg = tmp_path / "site" / "bocpy"
    shutil.copytree(Path(bocpy.__file__).parent, pkg,
                    ignore=shutil.ignore_patterns("files*.so", "__pycache__"))
    shutil.copy(plugin, pkg / "plugins" / plugin.name)
    target = str(pkg / "plugins" / plugin.name)
    res = subprocess.run([sys.executable, "-c", CROSS.format(plugin=target)], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(pkg.parent)},
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    assert f"ok {tuple(sys.version_info[:2])}" in res.stdout
