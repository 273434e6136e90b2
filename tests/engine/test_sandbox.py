"""The script sandbox: what designers can do, and every known way out refused."""

import datetime
import os
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.sandbox import Sandbox, SandboxLimits, ScriptError, check_source
from app.engine.sandbox.guards import Refused, guarded_getattr
from app.engine.sandbox.pool import WORKER_FILE

pytestmark = pytest.mark.filterwarnings("error")

MiB = 1024**2
QUICK = SandboxLimits(
    timeout_seconds=0.5, memory_bytes=256 * MiB, step_budget=200_000, workers=1
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox()
    yield box
    box.close()


@pytest.fixture(scope="module")
def quick() -> Iterator[Sandbox]:
    """Short timeout, small memory and budget: limits trip fast."""
    box = Sandbox(QUICK)
    yield box
    box.close()


def worker_pids() -> set[int]:
    """Live sandbox workers that are children of this test process."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == os.getpid() and state != "Z" and b"worker.py" in cmdline:
            pids.add(int(entry.name))
    return pids


def new_workers(before: set[int]) -> set[int]:
    return worker_pids() - before


def kill_and_wait(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid in worker_pids() and time.monotonic() < deadline:
        time.sleep(0.01)


def failure(run, *args) -> ScriptError:
    with pytest.raises(ScriptError) as caught:
        run(*args)
    return caught.value


# What designers rely on.


@pytest.mark.parametrize(
    ("expression", "context", "expected"),
    [
        ("1 + 2 * 3 - 4 / 2", {}, 5.0),
        ("amount > 100 and country == 'NL'", {"amount": 150, "country": "NL"}, True),
        ("[v * 2 for v in values if v > 1]", {"values": [1, 2, 3]}, [4, 6]),
        ("{k: len(v) for k, v in names.items()}", {"names": {"a": "xy"}}, {"a": 2}),
        ("name.strip().title()", {"name": "  ada lovelace "}, "Ada Lovelace"),
        ("', '.join(sorted(tags))", {"tags": ["b", "a"]}, "a, b"),
        ("person.get('email', 'none')", {"person": {}}, "none"),
        ("f'{n:03d}-{code}'", {"n": 7, "code": "X"}, "007-X"),
        ("max(values, key=lambda v: -v)", {"values": [3, 1, 2]}, 1),
        ("2 ** 100", {}, 2**100),
        ("'ab' * 3 + 'c'", {}, "abababc"),
        ("(datetime(2024, 2, 28) + timedelta(days=2)).date()", {}, "2024-03-01"),
        (
            "datetime.fromisoformat(aware_at) + timedelta(hours=72)",
            {"aware_at": "2024-05-03T10:00:00+02:00"},
            "2024-05-06T10:00:00+02:00",
        ),
        ("datetime(2024, 1, 1, tzinfo=timezone.utc)", {}, "2024-01-01T00:00:00+00:00"),
        ("date(2024, 3, 1) - date(2024, 2, 1) == timedelta(days=29)", {}, True),
        ("date.today() <= datetime.now().date()", {}, True),
        ("datetime(2024, 1, 1, 9, 30).time()", {}, "09:30:00"),
        ("datetime.strptime('03/05/2024', '%d/%m/%Y')", {}, "2024-05-03T00:00:00"),
        ("   amount > 100", {"amount": 150}, True),
    ],
)
def test_expressions_return_json_values(sandbox, expression, context, expected):
    assert sandbox.evaluate(expression, context) == expected


@pytest.mark.parametrize(
    ("script", "context", "expected"),
    [
        (
            "total = 0\nfor i in range(10_000):\n    total += i",
            {},
            {"total": 49995000, "i": 9999},
        ),
        (
            "people.append('b')\ncounts = {}\nfor p in people:\n"
            "    counts[p] = counts.get(p, 0) + 1",
            {"people": ["a", "b"]},
            {"people": ["a", "b", "b"], "counts": {"a": 1, "b": 2}, "p": "b"},
        ),
        ("n = 0\nwhile True:\n    n += 1\n    if n == 5:\n        break", {}, {"n": 5}),
        ("a, (b, c) = 1, (2, 3)", {}, {"a": 1, "b": 2, "c": 3}),
        (
            "try:\n    x = 1 / 0\nexcept ZeroDivisionError:\n    x = None",
            {},
            {"x": None},
        ),
        ("def double(v):\n    return v * 2\nresult = double(4)", {}, {"result": 8}),
        ("print('hello')\nshown = True", {}, {"shown": True}),
        ("due = date(2024, 1, 31) + timedelta(days=30)", {}, {"due": "2024-03-01"}),
        ("items = tuple(range(3))", {}, {"items": [0, 1, 2]}),
        ("del gone", {"gone": 1, "kept": 2}, {"kept": 2}),
    ],
)
def test_scripts_return_the_new_context(sandbox, script, context, expected):
    assert sandbox.execute(script, context) == expected


def test_keys_starting_with_underscore_are_hidden_and_kept(sandbox):
    context = {"_engine": {"id": 1}, "x": 1}

    assert sandbox.execute("y = x + 1", context) == {
        "_engine": {"id": 1},
        "x": 1,
        "y": 2,
    }
    assert failure(sandbox.evaluate, "_engine", context).kind == "refused"


def test_check_source_compiles_without_running():
    assert check_source("while True:\n    pass", "exec") is None
    assert check_source("a > 1", "eval") is None


# Every known way out, refused.

GENERATOR_FRAME_WALK = """
def walk():
    yield frames
gen = walk()
frames = gen.gi_frame.f_back.f_globals
"""

ATTRIBUTE_ERROR_OBJ = """
try:
    date.nothing
except AttributeError as error:
    leaked = error.obj
"""

EXCEPT_STAR = """
try:
    raise ExceptionGroup('group', [ValueError()])
except* ValueError:
    pass
"""

EXCEPT_STAR_SPLIT = """
class Evil(BaseExceptionGroup):
    def split(self, *args):
        return 'not a tuple'
try:
    raise Evil('wow', [Exception()])
except* Exception:
    pass
"""


@pytest.mark.parametrize(
    ("source", "mode", "kind"),
    [
        ("import os", "exec", "refused"),
        ("from os import system", "exec", "refused"),
        ("__import__('os')", "eval", "refused"),
        ("open('/etc/passwd').read()", "eval", "runtime"),
        ("().__class__.__bases__[0].__subclasses__()", "eval", "refused"),
        ("type(1).__subclasses__()", "eval", "refused"),
        ("getattr((), '__cl' + 'ass__')", "eval", "runtime"),
        ("vars()", "eval", "runtime"),
        ("globals()['__builtins__']", "eval", "runtime"),
        ("__builtins__['open']", "eval", "refused"),
        ("[x for x in ()].__class__", "eval", "refused"),
        # CVE-2023-37271: generator frames lead back to the real globals.
        (GENERATOR_FRAME_WALK, "exec", "refused"),
        ("(i for i in []).gi_running", "eval", "refused"),
        ("int.mro()", "eval", "refused"),
        # CVE-2023-41039: format strings walk attributes behind the guard.
        ("'{0.__class__}'.format(1)", "eval", "refused"),
        ("'{x.__class__}'.format_map({'x': 1})", "eval", "refused"),
        ("str.format('{0.__class__}', 1)", "eval", "refused"),
        ("string.Formatter().vformat('{0.__class__}', [1], {})", "eval", "runtime"),
        ("format(1, '')", "eval", "runtime"),
        # A module reached without an underscore: datetime.sys.modules['os'].
        ("datetime.sys.modules['os']", "eval", "runtime"),
        ("date.today().sys", "eval", "runtime"),
        # CVE-2024-47532: AttributeError.obj.
        (ATTRIBUTE_ERROR_OBJ, "exec", "refused"),
        # CVE-2025-22153: except* with a crafted ExceptionGroup.
        (EXCEPT_STAR, "exec", "refused"),
        (EXCEPT_STAR_SPLIT, "exec", "refused"),
        ("BaseExceptionGroup('x', [Exception()])", "eval", "runtime"),
        ("class Anything:\n    pass", "exec", "refused"),
        ("async def later():\n    pass", "exec", "refused"),
        ("len.__self__", "eval", "refused"),
        ("(lambda: 0).__globals__", "eval", "refused"),
        ("d = {}\nd.x = 1", "exec", "runtime"),
        ("f = len\nf.x = 1", "exec", "refused"),
    ],
)
def test_known_escapes_are_refused(sandbox, source, mode, kind):
    run = sandbox.evaluate if mode == "eval" else sandbox.execute

    error = failure(run, source, {})

    assert error.kind == kind
    assert isinstance(error.line, int)


DECORATOR_GRABS_GLOBALS = """
def grab(f):
    return f.__globals__
@grab
def g():
    pass
"""

DECORATOR_BY_DYNAMIC_NAME = """
def grab(f):
    return getattr(f, '__glo' + 'bals__')
@grab
def g():
    pass
"""


@pytest.mark.parametrize(
    ("source", "mode", "kind"),
    [
        # type() with three arguments builds a class with any dunder in it.
        ("type('X', (), {'__init__': len})", "eval", "runtime"),
        ("type(1)", "eval", "runtime"),
        ("str.mro()", "eval", "refused"),
        # A function's globals hold __builtins__; decorators reach them at def time.
        ("(lambda: 0).__globals__['__builtins__']", "eval", "refused"),
        (DECORATOR_GRABS_GLOBALS, "exec", "refused"),
        (DECORATOR_BY_DYNAMIC_NAME, "exec", "runtime"),
        ("@(lambda f: f.__code__)\ndef g():\n    pass", "exec", "refused"),
        ("f = lambda x=vars(): x", "exec", "runtime"),
        ("g = (i for i in [1])\nf = getattr(g, 'gi_' + 'frame')", "exec", "runtime"),
        (
            "try:\n    1 / 0\nexcept Exception as e:\n    t = e.__traceback__",
            "exec",
            "refused",
        ),
        ("compile('1', 'x', 'eval')", "eval", "runtime"),
        ("object.__subclasses__()", "eval", "refused"),
        ("setattr(date, 'today', len)", "eval", "runtime"),
        ("breakpoint()", "eval", "refused"),
    ],
)
def test_classic_escapes_are_refused(sandbox, source, mode, kind):
    run = sandbox.evaluate if mode == "eval" else sandbox.execute

    assert failure(run, source, {}).kind == kind


@pytest.mark.parametrize(
    ("source", "kinds"),
    [
        ("'a'.ljust(10**10)", {"memory", "size"}),
        ("bytes(10**10)", {"runtime", "memory", "size"}),
        ("bytearray(10**10)", {"runtime", "memory", "size"}),
        ("'a' * 2**40", {"size"}),
        ("dict.fromkeys(range(10**8))", {"size"}),
        ("'x'.join(['a'] * 10**7)", {"size", "memory", "timeout"}),
    ],
)
def test_huge_allocations_are_stopped(quick, source, kinds):
    assert failure(quick.evaluate, source, {}).kind in kinds
    assert quick.evaluate("1 + 1", {}) == 2


@pytest.mark.parametrize(
    "source", ["'{0.__class__}'.format(1)", "str.format('{}', 1)", "int.mro()"]
)
def test_names_the_guard_refuses_are_refused_before_running(source):
    error = check_source(source, "eval")

    assert error is not None and error.kind == "refused"
    assert error.line == 1


def test_the_compiler_and_the_guard_refuse_the_same_names():
    from app.engine.sandbox import guards, policy

    assert policy.UNSAFE_ATTRIBUTES == guards._FORBIDDEN_ATTRIBUTES


def test_plain_recursion_is_an_error_not_a_crash(sandbox):
    error = failure(sandbox.execute, "def r(n):\n    return r(n + 1)\nr(0)", {})

    assert error.kind in {"runtime", "budget"}
    assert sandbox.evaluate("1 + 1", {}) == 2


def test_writing_a_file_is_impossible(sandbox, tmp_path):
    target = tmp_path / "out.txt"
    script = f"f = open({str(target)!r}, 'w')\nf.write('x')"

    assert failure(sandbox.execute, script, {}).kind == "runtime"
    assert not target.exists()


@pytest.mark.parametrize(
    "attribute",
    ["gi_frame", "gi_code", "cr_frame", "ag_frame", "f_back", "tb_next", "co_code"],
)
def test_frame_families_are_refused_even_by_dynamic_name(attribute):
    generator = (i for i in [])

    with pytest.raises(Refused):
        guarded_getattr(generator, attribute)


def test_no_attribute_of_a_module_is_reachable():
    with pytest.raises(Refused):
        guarded_getattr(datetime, "sys")
    with pytest.raises(Refused):
        guarded_getattr(types.ModuleType("plain"), "anything")


# Limits.


STAYS_TRIPPED = """
while True:
    try:
        while True:
            pass
    except:
        pass
"""

SWALLOWED_THEN_DONE = """
try:
    while True:
        pass
except:
    pass
done = True
"""

RECURSION_CATCHING_ITSELF = """
def spin(n):
    try:
        return spin(n + 1)
    except Exception:
        return spin(n + 1)
spin(0)
"""


@pytest.mark.parametrize(
    ("source", "mode", "kinds"),
    [
        ("while True:\n    pass", "exec", {"budget"}),
        (STAYS_TRIPPED, "exec", {"budget"}),
        (SWALLOWED_THEN_DONE, "exec", {"budget"}),
        (RECURSION_CATCHING_ITSELF, "exec", {"budget", "timeout"}),
        ("sum(1 for i in range(10**7))", "eval", {"budget"}),
        ("'a' * 10**10", "eval", {"size"}),
        ("[0] * 10**8", "eval", {"size"}),
        ("2 ** 10**9", "eval", {"size"}),
        ("1 << 10**9", "eval", {"size"}),
        ("range(10**10)", "eval", {"size"}),
        ("x = 'ab'\nwhile True:\n    x += x", "exec", {"size"}),
        ("x = 10**5000\nwhile True:\n    x = x * x", "exec", {"size"}),
        # Pure C work the step counter cannot see: the watchdog or a size check.
        ("for i in range(100):\n    total = sum(range(10**7))", "exec", {"timeout"}),
        (
            "for i in range(100):\n    rows = sorted(range(10**7), reverse=True)",
            "exec",
            {"timeout", "memory", "size"},
        ),
    ],
)
def test_limits_stop_runaway_code(quick, source, mode, kinds):
    run = quick.evaluate if mode == "eval" else quick.execute

    assert failure(run, source, {}).kind in kinds
    assert quick.evaluate("1 + 1", {}) == 2


def test_step_budget_follows_the_setting(quick):
    assert quick.execute("for i in range(150_000):\n    pass", {}) == {"i": 149999}
    assert failure(quick.execute, "for i in range(250_000):\n    pass", {}).kind == (
        "budget"
    )


def test_memory_blow_up_replaces_the_worker(quick):
    quick.evaluate("0", {})
    before = worker_pids()

    error = failure(quick.execute, "x = [1]\nfor i in range(64):\n    x.extend(x)", {})

    assert error.kind == "memory"
    assert quick.evaluate("1 + 1", {}) == 2
    assert worker_pids() != before


def test_timeout_replaces_the_worker_and_the_next_call_works(quick):
    spin = "for i in range(100):\n    total = sum(range(10**7))"
    started = time.monotonic()

    error = failure(quick.execute, spin, {})

    assert error.kind == "timeout"
    assert time.monotonic() - started < QUICK.timeout_seconds + 1.5
    assert quick.evaluate("'still here'", {}) == "still here"


# Errors a designer can act on, without task data in them.


@pytest.mark.parametrize(
    ("source", "mode", "kind", "line"),
    [
        ("x = 1\ny = = 2", "exec", "syntax", 2),
        ("x = 1\n\nif x:\nz = 2", "exec", "syntax", 4),
        ("a +", "eval", "syntax", 1),
        ("x = 1\nreturn x", "exec", "syntax", 2),
        ("x = 1\nimport os", "exec", "refused", 2),
        ("ok = 1\nbad = ok.__class__", "exec", "refused", 2),
    ],
)
def test_compile_errors_carry_their_line(sandbox, source, mode, kind, line):
    run = sandbox.evaluate if mode == "eval" else sandbox.execute

    checked = check_source(source, mode)
    ran = failure(run, source, {})

    assert (checked.kind, checked.line) == (kind, line)
    assert (ran.kind, ran.line) == (kind, line)


def test_runtime_errors_carry_their_line(sandbox):
    error = failure(sandbox.execute, "x = 1\n\ny = x / 0", {})

    assert (error.kind, error.line) == ("runtime", 3)
    assert "ZeroDivisionError" in error.message


@pytest.mark.parametrize(
    "source",
    ["people[email]", "int(email)", "datetime.fromisoformat(email)"],
)
def test_error_messages_do_not_echo_task_data(sandbox, source):
    context = {"people": {}, "email": "ada@example.org"}

    error = failure(sandbox.evaluate, source, context)

    assert error.kind == "runtime"
    assert "ada@example.org" not in str(error)


@pytest.mark.parametrize(
    ("script", "name"),
    [("tags = {1, 2}", "tags"), ("gen = (i for i in [])", "gen"), ("m = {1: 2}", "m")],
)
def test_results_that_are_not_json_name_the_variable(sandbox, script, name):
    error = failure(sandbox.execute, script, {})

    assert error.kind == "runtime"
    assert f"'{name}'" in error.message


@pytest.mark.parametrize("value", [object(), float("nan"), {1, 2}])
def test_context_that_is_not_json_is_refused(sandbox, value):
    error = failure(sandbox.evaluate, "1", {"value": value})

    assert error.kind == "refused"
    assert "'value'" in error.message


def test_worker_imports_neither_the_app_nor_flask_nor_spiffworkflow():
    probe = (
        "import sys; sys.argv = ['worker', '0', '0']; import runpy;"
        f" runpy.run_path({str(WORKER_FILE)!r});"
        " print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'app', 'flask', 'SpiffWorkflow'}))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, env={}, check=True
    )

    assert done.stdout.strip() == b"[]"


@pytest.mark.parametrize("field", ["timeout_seconds", "memory_bytes", "workers"])
def test_limits_must_be_positive(field):
    with pytest.raises(ValueError):
        SandboxLimits(**{field: 0})


def test_script_error_is_an_ordinary_exception():
    assert issubclass(ScriptError, Exception)
    assert str(ScriptError("syntax", "invalid syntax", 3)) == "line 3: invalid syntax"


# The worker pool.


def test_workers_start_lazily_clean_and_limited():
    before = worker_pids()
    box = Sandbox(SandboxLimits(memory_bytes=300 * MiB, workers=1))
    try:
        assert new_workers(before) == set()
        box.evaluate("1", {})
        (pid,) = new_workers(before)
        limits = Path(f"/proc/{pid}/limits").read_text()

        assert Path(f"/proc/{pid}/environ").read_bytes() == b""
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        assert b"-I" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert _limit(limits, "Max address space") == str(300 * MiB)
        assert _limit(limits, "Max file size") == "0"
        assert _limit(limits, "Max core file size") == "0"
        if os.geteuid() == 0:
            status = Path(f"/proc/{pid}/status").read_text()
            uid_line = next(
                line for line in status.splitlines() if line.startswith("Uid:")
            )
            assert uid_line.split()[1:] == ["65534"] * 4
    finally:
        box.close()
    assert new_workers(before) == set()


def _limit(limits: str, name: str) -> str:
    line = next(line for line in limits.splitlines() if line.startswith(name))
    return line[len(name) :].split()[0]


def test_a_worker_killed_while_idle_is_replaced():
    before = worker_pids()
    box = Sandbox(SandboxLimits(workers=1))
    try:
        box.evaluate("1", {})
        (pid,) = new_workers(before)
        kill_and_wait(pid)

        assert box.evaluate("2", {}) == 2
        assert pid not in worker_pids()
    finally:
        box.close()


def test_a_worker_killed_mid_call_fails_that_call_and_is_replaced():
    before = worker_pids()
    box = Sandbox(SandboxLimits(timeout_seconds=30, workers=1))
    try:
        box.evaluate("1", {})
        (pid,) = new_workers(before)
        threading.Timer(0.2, os.kill, (pid, signal.SIGKILL)).start()
        started = time.monotonic()
        spin = "for i in range(1000):\n    total = sum(range(10**7))"

        error = failure(box.execute, spin, {})

        assert error.kind == "runtime"
        assert time.monotonic() - started < 5
        assert box.evaluate("3", {}) == 3
    finally:
        box.close()


def test_a_closed_sandbox_can_be_used_again():
    box = Sandbox(SandboxLimits(workers=1))
    box.evaluate("1", {})
    box.close()

    assert box.evaluate("4", {}) == 4
    box.close()


def test_calls_from_many_threads_share_the_pool(sandbox):
    results: dict[int, object] = {}

    def call(n: int) -> None:
        results[n] = [sandbox.evaluate("n * 2", {"n": n}) for _ in range(20)]

    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == {n: [n * 2] * 20 for n in range(8)}


def test_a_worker_of_a_large_parent_is_not_retired_for_the_parents_size():
    ballast = b"x" * (200 * MiB)
    box = Sandbox(SandboxLimits(memory_bytes=300 * MiB, workers=1))
    try:
        before = worker_pids()
        box.evaluate("1", {})
        first = new_workers(before)
        box.evaluate("2", {})

        assert new_workers(before) == first
    finally:
        box.close()
        del ballast
