"""The sources of plugins/opencl.

cl_abi.h, our own declarations of the OpenCL ABI the plugin uses, against
the Khronos headers (Debian: opencl-headers, installed by scripts/env.sh):
every constant has the same value, every type the same width, every entry
point the same signature.  No plugin source includes a system OpenCL
header, so the plugin builds without one.  And the files include one way
(scripts/check_layers.py, PLUGIN_TIERS)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "plugins" / "opencl"
sys.path.insert(0, str(ROOT / "scripts"))
import check_layers  # noqa: E402

# Our opaque handle tags, spelled as the Khronos headers spell theirs, so the
# two sets of typedefs name the same types in one translation unit.
HANDLES = {"clx_platform": "_cl_platform_id", "clx_device": "_cl_device_id",
           "clx_context": "_cl_context", "clx_queue": "_cl_command_queue",
           "clx_mem": "_cl_mem", "clx_program": "_cl_program",
           "clx_kernel": "_cl_kernel", "clx_event": "_cl_event"}


def _cc() -> str:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    found = shutil.which(cc) or shutil.which("cc")
    assert found is not None, "a C compiler is needed (apt-get install build-essential)"
    return found


def _khronos_headers(cc: str) -> bool:
    probe = subprocess.run([cc, "-E", "-x", "c", "-"], input="#include <CL/cl.h>\n",
                           capture_output=True, text=True)
    return probe.returncode == 0


def _our_constants(cc: str) -> list[str]:
    out = subprocess.run([cc, "-dM", "-E", "-I", str(SRC), "-x", "c", "-"],
                         input='#include "cl_abi.h"\n', capture_output=True,
                         text=True, check=True).stdout
    names = sorted(m.group(1) for m in re.finditer(r"^#define (CL_\w+) ", out, re.M))
    assert len(names) > 80, names
    return names


def _check_program(names: list[str]) -> str:
    lines = [f"#define {ours} {theirs}" for ours, theirs in HANDLES.items()]
    lines += ["#include <stdio.h>", '#include "cl_loader.h"',
              "static const long long ours[] = {"]
    lines += [f"  (long long)({n})," for n in names] + ["};"]
    lines += [f"#undef {n}" for n in names]
    lines += ["#define CL_TARGET_OPENCL_VERSION 120",
              "#define CL_USE_DEPRECATED_OPENCL_1_2_APIS",
              "#include <CL/cl.h>", "#include <CL/cl_ext.h>",
              # A typedef named twice must name the same type (C11), so the
              # widths are checked by compiling; the signatures here:
              "#define SAME(name) _Static_assert(_Generic((&name), "
              "clx_fn_##name: 1, default: 0), #name \" has another signature\");",
              "CLX_ENTRIES(SAME)",
              "int main(void) {", "  static const long long theirs[] = {"]
    lines += [f"    (long long)({n})," for n in names] + ["  };"]
    lines += ["  static const char *names[] = {"] + [f'    "{n}",' for n in names] + ["  };"]
    lines += ["  int bad = 0;",
              "  for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {",
              "    if (ours[i] != theirs[i]) {",
              '      printf("%s: ours %lld, Khronos %lld\\n", names[i], ours[i], theirs[i]);',
              "      bad = 1;", "    }", "  }",
              '  printf("%zu constants agree\\n", sizeof ours / sizeof ours[0]);',
              "  return bad;", "}"]
    return "\n".join(lines) + "\n"


def test_cl_abi_matches_the_khronos_headers(tmp_path: Path) -> None:
    cc = _cc()
    if not _khronos_headers(cc):
        pytest.skip("the Khronos OpenCL headers are not installed "
                    "(apt-get install opencl-headers) to compare cl_abi.h with")
    names = _our_constants(cc)
    (tmp_path / "check.c").write_text(_check_program(names))
    build = subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic",
                            "-I", str(SRC), "-o", str(tmp_path / "check"),
                            str(tmp_path / "check.c")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(tmp_path / "check")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
    assert f"{len(names)} constants agree" in run.stdout


def test_the_check_catches_a_wrong_signature(tmp_path: Path) -> None:
    """The comparison above can fail: a copy of cl_abi.h with one parameter's
    type changed does not compile against the Khronos headers."""
    cc = _cc()
    if not _khronos_headers(cc):
        pytest.skip("the Khronos OpenCL headers are not installed "
                    "(apt-get install opencl-headers) to compare cl_abi.h with")
    names = _our_constants(cc)
    text = (SRC / "cl_abi.h").read_text()
    broken = text.replace("(cl_uint num_events,", "(cl_int num_events,")
    assert broken != text
    (tmp_path / "cl_abi.h").write_text(broken)
    shutil.copy(SRC / "cl_loader.h", tmp_path / "cl_loader.h")
    (tmp_path / "check.c").write_text(_check_program(names))
    build = subprocess.run([cc, "-std=c11", "-I", str(tmp_path), "-o",
                            str(tmp_path / "check"), str(tmp_path / "check.c")],
                           capture_output=True, text=True)
    assert build.returncode != 0
    assert "clWaitForEvents has another signature" in build.stderr


def test_no_plugin_source_includes_a_system_opencl_header() -> None:
    sources = sorted(SRC.glob("*.[ch]"))
    assert len(sources) > 3
    system = re.compile(r"^\s*#\s*include\s*<(CL|OpenCL)/", re.M)
    assert [p.name for p in sources if system.search(p.read_text())] == []


def test_source_files_depend_one_way() -> None:
    found, graph = check_layers.plugin_problems(ROOT, "opencl")
    assert found == []
    units = {p.stem for p in SRC.glob("*.[ch]")}
    assert set(graph) == units
    assert graph["ocl_kind"] == set() and graph["cl_abi"] == set()
    assert "ocl_context" in graph["ocl_module"]


def _copy_with(tmp_path: Path, changes: dict[str, str]) -> Path:
    dst = tmp_path / "plugins" / "opencl"
    shutil.copytree(SRC, dst, ignore=shutil.ignore_patterns("*.txt", "*.toml"))
    for name, text in changes.items():
        (dst / name).write_text(text)
    return tmp_path


def test_layout_check_reports_an_upward_include_and_strays(tmp_path: Path) -> None:
    child = (SRC / "ocl_child.c").read_text()
    root = _copy_with(tmp_path, {
        "ocl_child.c": child.replace('#include "ocl_child.h"\n',
                                    '#include "ocl_child.h"\n#include "ocl_run.h"\n', 1),
        "ocl_kind.c": '#include <Python.h>\n#include "ocl_kind.h"\n',
        "ocl_args.c": '#include "ocl_kind.h"\n#include "ocl_args.h"\n',
        "ocl_stray.c": "\n",
    })
    found, _ = check_layers.plugin_problems(root, "opencl")
    assert any("ocl_child.c: includes \"ocl_run.h\" of the same or a higher tier" in f
               for f in found), found
    assert any("ocl_args.c: does not include its own header ocl_args.h first" in f
               for f in found), found
    assert any("ocl_stray.c: not in a tier" in f for f in found), found
    assert not any("ocl_kind.c" in f for f in found), found  # a system header first is fine
