"""abi/abi.manifest is the single source of the table: the header struct, the
core's initializer and the docs must agree with it, and the pinned layout
(abi/abi.layout) may only grow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_abi_support import REPO, gen_abi

GEN = gen_abi()
GENERATED = [GEN.ABI_HEADER, GEN.BOCPY_H, GEN.TABLE_C, GEN.DOCS]


def copy_tree(tmp: Path) -> Path:
    """The files the generator reads and writes, copied under tmp."""
    for rel in [GEN.MANIFEST, GEN.LAYOUT, *GENERATED]:
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, dest)
    return tmp


def test_generated_files_agree_with_the_manifest() -> None:
    problems = GEN.check(REPO)
    assert problems == [], "\n".join(problems)


def test_generator_check_command() -> None:
    res = subprocess.run([sys.executable, str(REPO / "abi" / "gen_abi.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_layout_pins_every_entry_in_order() -> None:
    man = GEN.load_manifest(REPO)
    pinned = GEN.read_layout(REPO)
    assert pinned == [e.layout_line for e in man.entries]
    assert [int(line.split()[0]) for line in pinned] == list(range(len(pinned)))


def test_layout_only_grows_against_the_last_commit() -> None:
    # The committed layout must be a prefix of today's: entries published in
    # a commit can never move, change or disappear.
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    res = subprocess.run([git, "show", f"HEAD:{GEN.LAYOUT.as_posix()}"], cwd=REPO,
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip("abi/abi.layout is not committed yet")
    committed = [ln for ln in res.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    current = GEN.read_layout(REPO)
    assert current[: len(committed)] == committed


def test_entry_minors_never_decrease_and_match_the_header() -> None:
    man = GEN.load_manifest(REPO)
    minors = [e.minor for e in man.entries]
    assert minors == sorted(minors)
    header = (REPO / GEN.ABI_HEADER).read_text()
    assert f"#define BOCPY_ABI_MINOR {max(minors)}\n" in header
    assert f"#define BOCPY_ABI_MAJOR {man.major}\n" in header


def test_every_entry_documents_affinity_and_errors() -> None:
    docs = (REPO / GEN.DOCS).read_text()
    for e in GEN.load_manifest(REPO).entries:
        assert e.affinity and e.errors and e.summary, e.name
        assert f"`{e.name}`" in docs


# ---- the checks catch drift (on a copy of the files) -------------------------

def test_check_catches_an_edited_header(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    path = root / GEN.BOCPY_H
    text = path.read_text()
    path.write_text(text.replace("(*cown_get)", "(*cown_got)"))
    problems = GEN.check(root)
    assert any("bocpy.h is out of date" in p for p in problems), problems


def test_check_catches_a_stale_initializer_and_docs(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    for rel in (GEN.TABLE_C, GEN.DOCS):
        path = root / rel
        path.write_text(path.read_text().replace("cown_set", "cown_put"))
    problems = GEN.check(root)
    assert any("abi_table_init.h is out of date" in p for p in problems), problems
    assert any("c_abi.md is out of date" in p for p in problems), problems


def _manifest_sections(root: Path) -> tuple[str, list[str]]:
    text = (root / GEN.MANIFEST).read_text()
    head, *sections = text.split("\n[")
    return head, ["[" + s for s in sections]


def test_check_catches_a_moved_entry(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    head, sections = _manifest_sections(root)
    sections[2], sections[3] = sections[3], sections[2]  # swap two entries
    (root / GEN.MANIFEST).write_text(head + "\n" + "\n".join(sections))
    problems = GEN.check(root)
    assert any("pinned entry changed" in p for p in problems), problems
    # and the generator refuses to rewrite anything
    res = subprocess.run([sys.executable, str(REPO / "abi" / "gen_abi.py"),
                          "--root", str(root)], capture_output=True, text=True)
    assert res.returncode == 1 and "append-only" in res.stderr


def test_check_catches_a_changed_signature(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    path = root / GEN.MANIFEST
    path.write_text(path.read_text().replace(
        "signature = int cown_set(PyObject *cown, PyObject *value)",
        "signature = int cown_set(PyObject *cown, PyObject *value, int flags)"))
    problems = GEN.check(root)
    assert any("pinned entry changed" in p and "cown_set" in p for p in problems), problems


def test_check_catches_a_removed_entry(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    head, sections = _manifest_sections(root)
    (root / GEN.MANIFEST).write_text(head + "\n" + "\n".join(sections[:-1]))
    problems = GEN.check(root)
    assert any("pinned entry removed" in p for p in problems), problems


def test_appending_an_entry_regenerates_and_pins(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    man = GEN.load_manifest(root)
    new_minor = max(e.minor for e in man.entries) + 1
    with (root / GEN.MANIFEST).open("a") as f:
        f.write(f"""
[future_entry]
minor = {new_minor}
signature = int future_entry(PyObject *obj)
affinity = any interpreter; attached thread state
errors = -1 with TypeError
summary = A later addition.
""")
    problems = GEN.check(root)
    assert any("does not pin entries ['future_entry']" in p for p in problems), problems
    gen = [sys.executable, str(REPO / "abi" / "gen_abi.py"), "--root", str(root)]
    assert subprocess.run(gen + ["--pin"], capture_output=True).returncode == 0
    assert GEN.check(root) == []
    header = (root / GEN.ABI_HEADER).read_text()
    assert f"#define BOCPY_ABI_MINOR {new_minor}\n" in header
    assert "int (*future_entry)(PyObject *obj);" in (root / GEN.BOCPY_H).read_text()
    assert ".future_entry = abi_future_entry," in (root / GEN.TABLE_C).read_text()
    assert GEN.read_layout(root)[-1].startswith(f"{len(man.entries)} future_entry {new_minor} ")


def test_manifest_rejects_a_lower_minor_after_a_higher_one(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    with (root / GEN.MANIFEST).open("a") as f:
        f.write("\n[a]\nminor = 5\nsignature = int a(void)\naffinity = x\nerrors = y\nsummary = z\n"
                "\n[b]\nminor = 2\nsignature = int b(void)\naffinity = x\nerrors = y\nsummary = z\n")
    with pytest.raises(ValueError, match="append-only"):
        GEN.load_manifest(root)


def test_manifest_rejects_a_signature_with_another_name(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    with (root / GEN.MANIFEST).open("a") as f:
        f.write("\n[a]\nminor = 9\nsignature = int b(void)\naffinity = x\nerrors = y\nsummary = z\n")
    with pytest.raises(ValueError, match="bad signature"):
        GEN.load_manifest(root)
