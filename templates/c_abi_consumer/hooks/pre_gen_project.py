"""Checks the answers before cookiecutter writes anything.

project_slug (derived from project_name unless given) becomes the module
name, the file name of the extension (<slug>.abi3.so) and the C symbol
PyInit_<slug>, so it must be a lowercase Python identifier.  project_name
and description are pasted into C comments and string literals.
"""

import keyword
import re
import sys

slug = "{{ cookiecutter.project_slug }}"
name = """{{ cookiecutter.project_name }}"""
description = """{{ cookiecutter.description }}"""
version = "{{ cookiecutter.version }}"

errors = []
if not re.fullmatch(r"[a-z_][a-z0-9_]*", slug) or keyword.iskeyword(slug):
    errors.append(
        f"project_slug {slug!r} is not a valid module name: use lowercase letters, "
        "digits and '_', not starting with a digit (e.g. 'zip_tools'); it is derived "
        "from project_name unless you give it"
    )
if slug in ("bocpy", "test", "tests"):
    errors.append(f"project_slug {slug!r} would shadow another module: choose another name")
for field, text in (("project_name", name), ("description", description)):
    bad = [s for s in ('"', "\\", "*/", "\n") if s in text]
    if bad:
        errors.append(f"{field} must not contain {' or '.join(map(repr, bad))} "
                      "(it is pasted into C strings and comments)")
if not re.fullmatch(r"[0-9]+(\.[0-9]+)*([abc]|rc|\.post|\.dev)?[0-9]*", version):
    errors.append(f"version {version!r} is not a PEP 440 version such as 0.1.0")
if errors:
    for e in errors:
        print(f"ERROR: {e}", file=sys.stderr)
    sys.exit(1)
