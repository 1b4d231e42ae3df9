"""Every exception class bocpy defines can travel (issue 27).

A behavior's exception reaches the caller by pickle, which finds a class by
its ``__module__`` and ``__qualname__``; a class that is not importable from
there arrives as ``UnpicklableException`` and ``except ValueError`` written
for the original misses it.  These tests find every exception class in the
installed package (the Python modules, ``bocpy._core`` and every plugin that
was built), and check for each one that it is importable from where its
``__module__`` says, survives ``pickle``, and keeps its type when a behavior
on a worker raises it.
"""

from __future__ import annotations

import importlib
import pickle
import pkgutil
import re
from pathlib import Path

import pytest

import bocpy
import bocpy.plugins
from bocpy import UnpicklableException, wait, when

# Modules that need a display or an optional third-party package at import.
NOT_WALKED = {"bocpy.tk"}

#: Constructor arguments of classes that do not take one message.
ARGS: dict[str, tuple[object, ...]] = {
    "bocpy._errors.RemoteTraceback": ("Traceback (most recent call last): ...\n", "body",
                                      "prog.py:3", "prog.py:4 in body"),
    "bocpy._errors.UnpicklableException": ("mod.Custom", "it could not travel"),
}


def bocpy_modules() -> list[str]:
    names = ["bocpy", "bocpy._core"]
    for info in pkgutil.iter_modules(bocpy.__path__, "bocpy."):
        names.append(info.name)
    for info in pkgutil.iter_modules(bocpy.plugins.__path__, "bocpy.plugins."):
        names.append(info.name)
    return sorted(set(names) - NOT_WALKED)


def exception_classes() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in bocpy_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, BaseException)
                    and value.__module__.split(".")[0] == "bocpy"):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[k] for k in sorted(found)]


CLASSES = exception_classes()


def key(cls: type[BaseException]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def make(cls: type[BaseException]) -> BaseException:
    return cls(*ARGS.get(key(cls), ("something went wrong",)))


def test_the_walk_finds_the_classes_the_stubs_declare() -> None:
    """The stubs (.pyi) list the classes the C modules define: the walk must
    find each of them, and the two messaging errors from the issue."""
    stubs = Path(bocpy.__file__).parent
    declared = set()
    for pyi in [stubs / "_core.pyi", *sorted((stubs / "plugins").glob("*.pyi"))]:
        module = "bocpy._core" if pyi.stem == "_core" else f"bocpy.plugins.{pyi.stem}"
        if module not in bocpy_modules():
            continue  # a plugin this build left out
        for m in re.finditer(r"^class (\w+)\(([^)]*)\)", pyi.read_text(), re.M):
            if re.search(r"Error|Exception|Warning", m.group(2)):
                declared.add(m.group(1))
    names = {cls.__qualname__ for cls in CLASSES}
    assert declared <= names, declared - names
    assert {"EmptyTagsError", "TagCapacityError", "RemoteTraceback",
            "UnpicklableException"} <= names


def test_messaging_errors_are_exported_from_bocpy() -> None:
    assert bocpy.EmptyTagsError is bocpy._core.EmptyTagsError
    assert bocpy.TagCapacityError is bocpy._core.TagCapacityError
    assert {"EmptyTagsError", "TagCapacityError"} <= set(bocpy.__all__)
    with pytest.raises(bocpy.EmptyTagsError) as info:
        bocpy.receive([])
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is bocpy.EmptyTagsError and copy.args == info.value.args


@pytest.mark.parametrize("cls", CLASSES, ids=key)
def test_importable_from_its_module(cls: type[BaseException]) -> None:
    module = importlib.import_module(cls.__module__)
    assert getattr(module, cls.__qualname__, None) is cls, (
        f"{key(cls)} is not importable from {cls.__module__}")


@pytest.mark.parametrize("cls", CLASSES, ids=key)
def test_pickles(cls: type[BaseException]) -> None:
    exc = make(cls)
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is cls
    assert copy.args == exc.args
    assert str(copy) == str(exc)


def test_each_keeps_its_type_when_a_behavior_raises_it() -> None:
    results = []
    for cls in CLASSES:
        module, qualname, args = cls.__module__, cls.__qualname__, ARGS.get(key(cls), ())

        @when()
        def raise_it():
            import importlib

            found = getattr(importlib.import_module(module), qualname)
            raise found(*args) if args else found("raised on a worker")

        results.append((cls, raise_it))
    wait()
    for cls, result in results:
        with pytest.raises(BaseException) as info:
            result.unwrap()
        assert not isinstance(info.value, UnpicklableException) or cls is UnpicklableException
        assert type(info.value) is cls, (key(cls), info.value)
