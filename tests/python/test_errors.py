"""Errors people can act on (issue 17) and the reference's exception types
(issue 19): tracebacks that survive the trip from a worker, the exit report
of unhandled behavior exceptions, @when and ownership messages, the
exception flag, empty tag lists, the noticeboard before start."""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

import pytest

import bocpy
from bocpy import Cown, PinnedCown, RemoteTraceback, UnpicklableException, wait, when

HERE = Path(__file__).resolve()


def run_script(source: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a script file (behaviors need a file) in a fresh
    interpreter; return the finished process."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "prog.py"
        path.write_text(source)
        return subprocess.run([sys.executable, str(path)], cwd=d, capture_output=True,
                              text=True, timeout=timeout)


def _line_of(text: str) -> int:
    """The line number in this file of the first line containing ``text``."""
    for i, line in enumerate(HERE.read_text().splitlines(), 1):
        if text in line and "_line_of" not in line:
            return i
    raise AssertionError(text)


# ---- tracebacks survive -------------------------------------------------------


def test_unwrap_shows_the_failing_line_of_the_body() -> None:
    c = Cown(1)

    @when(c)
    def typo(c):
        return c.valeu  # the failing line

    wait()
    with pytest.raises(AttributeError) as info:
        typo.unwrap()
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert cause.behavior == "test_unwrap_shows_the_failing_line_of_the_body.<locals>.typo"
    text = "".join(traceback.format_exception(info.value))
    failing = _line_of("return c.valeu  # the failing line")
    assert f'File "{HERE}", line {failing}, in typo' in text
    assert cause.defined_at == f"{HERE}:{failing - 2}"  # the @when line
    assert cause.failed_at == f"{HERE}:{failing} in typo"
    # the local frames follow, after the remote ones
    assert text.index("line %d, in typo" % failing) < text.index("typo.unwrap()")


def _helper_that_fails(x: int) -> int:
    raise ValueError(f"bad {x}")  # helper failing line


def test_value_of_a_failed_result_carries_the_frames_of_nested_calls() -> None:
    @when(Cown(3))
    def calls_helper(c):
        return _helper_that_fails(c.value)

    wait()
    assert calls_helper.exception
    exc = calls_helper.value
    assert isinstance(exc, ValueError) and str(exc) == "bad 3"
    text = exc.__cause__.text
    assert "in calls_helper" in text
    assert f"line {_line_of('helper failing line')}, in _helper_that_fails" in text


class _HoldsALock(Exception):
    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.lock = threading.Lock()  # cannot be pickled


class _TwoArgs(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickles, cannot be rebuilt
        super().__init__(f"{a}+{b}")


def test_an_unpicklable_exception_arrives_with_type_message_and_traceback() -> None:
    @when(Cown())
    def fails(c):
        raise _HoldsALock("cannot travel")

    @when(Cown())
    def fails_too(c):
        raise _TwoArgs(1, 2)

    wait()
    for result, name, message in ((fails, "_HoldsALock", "cannot travel"),
                                  (fails_too, "_TwoArgs", "1+2")):
        exc = result.value
        assert isinstance(exc, UnpicklableException)
        assert exc.type_name == f"test_errors.{name}"
        assert exc.message == message
        assert f"in {result is fails and 'fails' or 'fails_too'}" in exc.__cause__.text
        assert f"{name}: {message}" in exc.__cause__.text


def test_an_exception_sent_as_a_message_keeps_its_traceback() -> None:
    def raiser() -> None:
        raise KeyError("k")

    try:
        raiser()
    except KeyError as exc:
        bocpy.send("errors-test", exc)
    _, got = bocpy.receive("errors-test", 5)
    assert isinstance(got, KeyError)
    assert "in raiser" in got.__cause__.text
    # travelling again keeps the first traceback, not a new empty one
    bocpy.send("errors-test", got)
    _, again = bocpy.receive("errors-test", 5)
    assert again.__cause__.text == got.__cause__.text


def test_remote_traceback_pickles() -> None:
    rt = RemoteTraceback("Traceback...\n", "b", "f.py:1", "f.py:2 in b")
    back = pickle.loads(pickle.dumps(rt))
    assert (back.text, back.behavior, back.defined_at, back.failed_at) == (
        rt.text, rt.behavior, rt.defined_at, rt.failed_at)
    assert "in behavior 'b' (defined at f.py:1)" in str(back)


# ---- the exit report ------------------------------------------------------------

EXIT_REPORT = """\
from bocpy import Cown, when, wait

def helper(v):
    return v["missing"]

c = Cown({})

@when(c)
def lookup(c):
    return helper(c.value)

@when(c)
def division(c):
    return 1 / 0

@when(c)
def handled(c):
    raise OSError("read below")

wait()
handled.value
"""


def test_exit_report_names_each_behavior_where_defined_and_where_it_failed() -> None:
    out = run_script(EXIT_REPORT)
    assert out.returncode == 0, out.stderr
    err = out.stderr
    assert "<unprintable>" not in err
    assert err.count("raised an exception that nobody handled") == 2
    assert "behavior 'lookup' raised an exception that nobody handled" in err
    assert "behavior defined at " in err and "prog.py:8" in err
    assert "prog.py:4 in helper" in err  # where it failed
    assert "KeyError: 'missing'" in err
    assert "behavior 'division' raised" in err and "ZeroDivisionError" in err
    assert "prog.py:12" in err and "prog.py:14 in division" in err
    assert "handled" not in err.replace("nobody handled", "").replace("to handle it", "")


NESTED = """\
from bocpy import Cown, when, wait
a = Cown(1)
b = Cown(2)

@when(a)
def parent(a):
    @when(a)
    def child(x):
        return b.value  # b is not named by child's @when
    return "parent done"

wait()
print(parent.exception, type(parent.value).__name__)
print(parent.value)
"""


def test_a_nested_behavior_reading_an_unnamed_cown_fails_in_the_parent() -> None:
    out = run_script(NESTED)
    assert out.returncode == 0, out.stderr
    flag, first = out.stdout.splitlines()[:2]
    assert flag == "True RuntimeError"
    assert "behavior 'parent.<locals>.child' reads b.value" in first
    assert "b (Cown #2) is not one of the cowns its @when names" in first
    assert "@when(..., b)" in first
    assert "nobody handled" not in out.stderr  # the parent's result was read


NESTED_FAILS = """\
from bocpy import Cown, when, wait
a = Cown(1)

@when(a)
def parent(a):
    @when(a)
    def child(x):
        return x.value["no such key"]
    return "parent done"

wait()
print(parent.value)
print("after wait")
"""


def test_a_nested_behavior_failure_is_reported_when_it_has_run() -> None:
    out = run_script(NESTED_FAILS)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["parent done", "after wait"]
    err = out.stderr
    assert "behavior 'parent.<locals>.child' raised an exception that nobody handled" in err
    assert "prog.py:8 in child" in err
    assert "TypeError" in err
    assert err.count("nobody handled") == 1


# ---- messages that say what to do ---------------------------------------------


def test_when_errors_name_position_type_and_what_is_accepted() -> None:
    with pytest.raises(TypeError) as info:
        when(5)
    msg = str(info.value)
    assert "can only schedule over cowns" in msg  # the reference's words
    assert "@when argument 1 has type int (5)" in msg
    assert "Cown or PinnedCown, or a list or tuple of them" in msg
    c = Cown(0)
    with pytest.raises(TypeError, match=r"@when argument 3 has type str \('x'\)"):
        when(c, [c], "x")
    with pytest.raises(TypeError) as info:
        when(c, [c, "x"])  # raised at the @when, before any body is given
    assert "@when argument 2 (a list) holds an item of type str at index 1" in str(info.value)
    with pytest.raises(TypeError, match=r"argument 1 \(a tuple\) holds an item of type int"):
        when((c, 3))
    wait()


def test_when_error_traceback_points_at_the_callers_line() -> None:
    try:
        when(1.5)  # the caller's line
    except TypeError as exc:
        frames = traceback.extract_tb(exc.__traceback__)
    assert frames[0].filename == str(HERE)
    assert frames[0].lineno == _line_of("when(1.5)  # the caller's line")


def test_does_not_own_names_the_cown_and_what_to_do_on_main() -> None:
    c = Cown(0)
    gate = "errors-gate"

    @when(c)
    def hold(c):
        bocpy.receive(gate, 10)

    try:
        with pytest.raises(RuntimeError) as info:
            c.value
    finally:
        bocpy.send(gate, 1)
        wait()
    msg = str(info.value)
    assert "The current interpreter does not own this cown" in msg
    assert f"Cown #{hash_id(c)}" in msg
    assert "bocpy.wait()" in msg and "@when(cown)" in msg


def hash_id(c: Cown) -> int:
    return int(repr(c).split("#")[1].split(",")[0])


def test_does_not_own_inside_a_behavior_says_to_name_it() -> None:
    other = Cown(2)
    holder = Cown([other])  # a cown reached through another one's value

    @when(holder)
    def reads_other(h):
        return h.value[0].value

    wait()
    exc = reads_other.value
    assert isinstance(exc, RuntimeError)
    assert f"Cown #{hash_id(other)}" in str(exc)
    assert "does not name it in its @when" in str(exc)


OTHER = Cown(0)


def test_reading_a_captured_cown_not_named_fails_at_the_when() -> None:
    named = Cown(1)
    closure = Cown(2)
    with pytest.raises(RuntimeError, match=r"reads OTHER.value, but OTHER \(Cown #\d+\) is not"):
        @when(named)
        def reads_global(x):
            return OTHER.value
    with pytest.raises(RuntimeError, match=r"reads closure.value"):
        @when(named)
        def reads_closure(x):
            return closure.value
    with pytest.raises(RuntimeError, match=r"reads extra.exception"):
        @when(named)
        def reads_param(x, extra=closure):
            return extra.exception
    with pytest.raises(RuntimeError, match=r"reads closure.value"):
        @when(named)
        def writes_closure(x):
            closure.value = 5

    # Named (alone or in a group), pinned, or acquired by hand: no error.
    pin = PinnedCown(3)

    @when(named, [closure])
    def named_ok(x, group):
        return closure.value + x.value

    @when(pin)
    def pinned_ok(p):
        return pin.value

    @when(named)
    def by_hand(x):
        closure.acquire()
        try:
            return closure.value
        finally:
            closure.release()

    wait()
    assert named_ok.value == 3 and pinned_ok.value == 3
    assert by_hand.value == 2 or isinstance(by_hand.value, RuntimeError)


# ---- issue 19: the exception flag, empty tags, the noticeboard before start ----


def test_writing_a_value_clears_the_exception_flag() -> None:
    c = Cown(0)

    @when(c)
    def boom(c):
        raise ValueError("x")

    @when(boom)
    def overwrite(r):
        assert r.exception
        r.value = 42
        return r.exception

    wait()
    assert overwrite.value is False
    assert boom.exception is False and boom.value == 42
    boom.exception = True
    boom.value = 7  # on main too
    assert boom.exception is False


def test_drain_of_no_tags_is_a_no_op() -> None:
    bocpy.send("errors-keep", 1)
    assert bocpy.drain([]) is None
    assert bocpy.drain(()) is None
    assert bocpy.receive("errors-keep", 1) == ("errors-keep", 1)


def test_receive_of_no_tags_is_both_valueerror_and_runtimeerror() -> None:
    for exc_type in (ValueError, RuntimeError, bocpy._core.EmptyTagsError):
        with pytest.raises(exc_type, match=r"receive\(\) needs at least one tag"):
            bocpy.receive([])
    assert issubclass(bocpy._core.EmptyTagsError, ValueError)
    assert issubclass(bocpy._core.EmptyTagsError, RuntimeError)


NOTICE_OPS = """\
import bocpy
def ops():
    out = []
    bocpy.notice_write("w", 1)
    bocpy.notice_update("w", lambda v: v + 1, 0)
    bocpy.notice_update("fresh", lambda v: v * 3, 5)
    bocpy.notice_update("w2", lambda v: bocpy.REMOVED, 9)
    bocpy.notice_write("d", 1)
    bocpy.notice_delete("d")
    try:
        bocpy.notice_update("w", lambda v: 1 / 0)
    except ZeroDivisionError:
        out.append("raised")
    try:
        bocpy.notice_update("w", 5)
    except TypeError:
        out.append("typeerror")
    out.append(sorted(bocpy.noticeboard().items()))
    for k in ("w", "fresh"):
        bocpy.notice_delete(k)
    return out
before = ops()
bocpy.start()
after = ops()
print(before == after, before)
@bocpy.when()
def seen():
    return bocpy.notice_read("x", "absent")
bocpy.wait()
print(seen.value)
"""


def test_noticeboard_mutations_before_start_behave_as_after_start() -> None:
    out = run_script(NOTICE_OPS)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == "True ['raised', 'typeerror', [('fresh', 15), ('w', 2)]]"
    assert second == "absent"


def test_a_write_before_start_is_seen_by_behaviors() -> None:
    out = run_script(
        "import bocpy\n"
        "bocpy.notice_write('k', 41)\n"
        "bocpy.notice_update('k', lambda v: v + 1)\n"
        "@bocpy.when()\n"
        "def b():\n"
        "    return bocpy.notice_read('k')\n"
        "bocpy.wait()\n"
        "print(b.value)\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"


def test_tag_capacity_is_both_keyerror_and_indexerror() -> None:
    err = bocpy._core.TagCapacityError
    assert issubclass(err, KeyError) and issubclass(err, IndexError)
    bocpy._core._msg_set_limits(2, 0)
    try:
        bocpy.set_tags([])
        bocpy.send("cap-a", 1)
        bocpy.send("cap-b", 1)
        for exc_type in (KeyError, IndexError, err):
            with pytest.raises(exc_type, match="No queue available for tag 'cap-c'"):
                bocpy.send("cap-c", 1)
        with pytest.raises(IndexError, match="'cap-3'"):
            bocpy.set_tags(["cap-1", "cap-2", "cap-3"])
    finally:
        bocpy._core._msg_set_limits(0, 0)
        bocpy.set_tags([])


class _WithCown(Exception):
    pass


def test_an_exception_holding_a_cown_arrives_with_it() -> None:
    c = Cown(5)

    @when(c)
    def raises_with_cown(x):
        raise _WithCown("has a cown", x)

    wait()
    exc = raises_with_cown.value
    assert isinstance(exc, _WithCown)
    assert exc.args[1] == c and exc.args[1].value == 5
    assert exc.__cause__.behavior.endswith("raises_with_cown")


DROPPED = """\
import sys
from bocpy import Cown, when, wait

@when(Cown(0))
def dropped(c):
    raise LookupError("nobody kept me")

wait()
print("before", flush=True)
del dropped
print("after", flush=True)
"""


def test_a_dropped_failed_result_is_reported_at_once() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "prog.py"
        path.write_text(DROPPED)
        out = subprocess.run([sys.executable, str(path)], cwd=d, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=60)
    assert out.returncode == 0, out.stdout
    text = out.stdout
    report = text.index("behavior 'dropped' raised an exception that nobody handled")
    assert text.index("before") < report < text.index("after")
    assert text.count("nobody handled") == 1
    assert "LookupError: nobody kept me" in text
