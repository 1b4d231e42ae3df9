"""Tests of {{cookiecutter.project_name}}.

Run with pytest (`pip install .[test]` then `pytest`), or without it:
`python tests/test_{{cookiecutter.project_slug}}.py` (`make test` builds the
module in place and does that).
"""

import {{cookiecutter.project_slug}} as plugin
from bocpy import Cown, wait, when


def bump_all(c, times):
    for _ in range(times):
        @when(c)
        def bump(c):
            c.value.add(1)  # each worker takes ownership of the C block in turn


def test_counter_moves_between_workers():
    c = Cown(plugin.Counter(1))
    bump_all(c, 100)
    wait()
    assert c.value.value == 101


def test_c_behavior_adds():
    c = Cown(plugin.Counter(0))
    bump_all(c, 10)
    plugin.add_later(c, 1000)  # a behavior written in C
    wait()
    assert c.value.value == 1010


def test_the_core_provides_the_abi():
    info = plugin.abi_info()
    assert info["major"] == 1
    assert info["minor"] >= info["headers_minor"]
    assert info["shareable"] > 0


if __name__ == "__main__":
    for name, test in list(globals().items()):
        if name.startswith("test_") and callable(test):
            test()
            print(f"{name}: ok")
