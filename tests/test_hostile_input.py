"""Hostile input (issue 11): every bad input is one line, exit 2 (exit 3 for an internal error), fast.

Suite and claims YAML (not UTF-8, alias and merge bombs, deep nesting, absurd numbers), ranges,
claims expressions, the numeric option validators, usage errors of the option parser, the last line
of defence at the command boundary, and the memory worker that must die with its parent.
"""

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import typer

from archbench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def quick(call, *args, limit_s=10.0):
    """Run ``call(*args)``; the UserError it must raise, checked to come within ``limit_s`` seconds."""
    start = time.perf_counter()
    with pytest.raises(UserError) as raised:
        call(*args)
    assert time.perf_counter() - start < limit_s
    message = str(raised.value)
    assert message and "\n" not in message.strip()
    return message


def write(tmp_path, text: str | bytes, name="hostile.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip())
    return path


def merge_bomb(levels: int = 9, width: int = 10) -> str:
    """About 650 bytes of YAML whose merge keys expand to width**levels (10^9) key-value pairs."""
    lines = ["x0: &x0 {" + ", ".join(f"k{i}: {i}" for i in range(width)) + "}"]
    for level in range(1, levels):
        lines.append(f"x{level}: &x{level} {{<<: [" + ", ".join([f"*x{level - 1}"] * width) + "]}")
    lines.append(f"cases: [{{<<: *x{levels - 1}, model: lenet5, metrics: [params]}}]")
    return "\n".join(lines) + "\n"


def alias_bomb(levels: int = 9) -> str:
    """The 'billion laughs': each list holds nine aliases of the previous one."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    lines.append(f"cases: *a{levels - 1}")
    return "\n".join(lines) + "\n"


# --- YAML files: suites and claims ----------------------------------------------------------------------------

BAD_YAML = {
    "latin-1": "cases:\n  - {model: lenet5, metrics: [params]}  # caf\xe9\n".encode("latin-1"),
    "utf-16": "cases: []\n".encode("utf-16"),
    "binary": bytes(range(256)),
    "merge bomb": merge_bomb(),
    "alias bomb": alias_bomb(),
    "deep lists": "cases: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "deep mappings": "cases: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n",
    "recursive alias": "cases: &c [*c]\n",
    "undefined alias": "cases: *nowhere\n",
    "two documents": "cases: []\n---\ncases: []\n",
    "python tag": "cases: !!python/object/apply:os.system [echo hi]\n",
    "tab indent": "cases:\n\t- model: lenet5\n",
    "unclosed": "cases: [{model: lenet5\n",
    "scalar root": "just text\n",
    "list root": "- 1\n- 2\n",
}


@pytest.mark.parametrize("name", BAD_YAML)
def test_a_hostile_suite_file_is_one_line(tmp_path, name):
    from archbench.suite import load_suite

    message = quick(load_suite, write(tmp_path, BAD_YAML[name]), limit_s=2.0)
    assert "hostile.yaml" in message


@pytest.mark.parametrize("name", BAD_YAML)
def test_a_hostile_claims_file_is_one_line(tmp_path, name):
    from archbench.claims.suite import load_claims

    text = BAD_YAML[name]
    if isinstance(text, str):
        text = text.replace("cases:", "claims:")
    message = quick(load_claims, write(tmp_path, text), limit_s=2.0)
    assert "hostile.yaml" in message


def test_not_utf8_names_the_byte_and_its_offset(tmp_path):
    from archbench.suite import load_suite

    text = BAD_YAML["latin-1"]
    message = quick(load_suite, write(tmp_path, text))
    assert f"offset {text.index(0xE9)}" in message and "0xe9" in message


def test_the_merge_bomb_is_refused_with_its_line(tmp_path):
    from archbench.suite import load_suite

    text = merge_bomb()
    assert len(text.encode()) < 700
    message = quick(load_suite, write(tmp_path, text), limit_s=1.0)
    # x0 is 21 nodes (a mapping of 10 pairs); each level is a mapping, its '<<' key, a list and 10 aliases:
    # x3 = 3 + 10 * (3 + 10 * (3 + 10 * 21)) = 21,333 nodes, and the aliases pass 100,000 on line 5 (x4),
    # at its 4th alias: 10*21 + 10*213 + 10*2,133 + 4*21,333 = 109,002.
    assert "hostile.yaml:5: aliases and merge keys expand to more than 100,000 nodes (*x3 repeats 21,333)" in message


def test_a_legitimate_merge_key_still_works(tmp_path):
    from archbench.suite import load_suite

    suite = load_suite(write(tmp_path, """
        defaults: &small {batch: 1}
        cases:
          - {<<: *small, model: lenet5, metrics: [params], id: first}
          - {<<: *small, model: lenet5, metrics: [params], id: second}
    """))
    assert [case.id for case in suite.cases] == ["first", "second"]


SUITE_CASE = "cases:\n  - {{model: lenet5, metrics: [params], {key}: {value}}}\n"
ABSURD_SETTINGS = [
    ("min_time", ".inf"), ("min_time", "-.inf"), ("min_time", ".nan"), ("min_time", "0"), ("min_time", "-1"),
    ("min_time", "1e300"), ("min_time", "true"), ("min_time", "'1'"), ("min_time", "[1]"),
    ("timeout_s", ".nan"), ("timeout_s", ".inf"), ("timeout_s", "0"), ("timeout_s", "-5"), ("timeout_s", "1e20"),
    ("threads", "0"), ("threads", "-1"), ("threads", "100000"), ("threads", "1.5"), ("threads", ".nan"),
    ("threads", "true"), ("batch", "0"), ("batch", "1000000000000"), ("batch", ".inf"), ("batch", "1.5"),
]


@pytest.mark.parametrize(("key", "value"), ABSURD_SETTINGS)
def test_an_absurd_number_in_a_suite_names_file_line_and_key(tmp_path, key, value):
    from archbench.suite import load_suite

    message = quick(load_suite, write(tmp_path, SUITE_CASE.format(key=key, value=value)))
    assert message.startswith(f"{tmp_path / 'hostile.yaml'}:2: cases[0].{key}:"), message


@pytest.mark.parametrize("sweep", [
    "{axis: seq, range: '1..1000000000:1'}", "{axis: seq, range: 64..512, points: 1}",
    "{axis: seq, range: 64..512, points: 100000}", "{axis: seq, range: 64..512, points: .inf}",
    "{axis: seq, range: 1..100000000000}", "{axis: seq, range: '" + ",".join(["8"] * 2000) + "'}",
    "{axis: seq, range: [" + ", ".join(["8"] * 2000) + "]}",
])
def test_an_absurd_sweep_in_a_suite_is_refused(tmp_path, sweep):
    from archbench.suite import load_suite

    text = f"cases:\n  - {{model: lstm, metrics: [flops], sweep: {sweep}}}\n"
    message = quick(load_suite, write(tmp_path, text), limit_s=2.0)
    assert message.startswith(f"{tmp_path / 'hostile.yaml'}:2: cases[0].sweep"), message


def test_the_run_command_says_it_in_one_line(cli, tmp_path):
    for text in (merge_bomb(), BAD_YAML["latin-1"], SUITE_CASE.format(key="min_time", value=".inf")):
        start = time.perf_counter()
        result = cli("run", str(write(tmp_path, text)))
        assert time.perf_counter() - start < 5
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output


# --- ranges ---------------------------------------------------------------------------------------------------

BAD_RANGES = [
    "1..1000000000:1", "1..1000000001", "1..10000000000000000000", "0..5", "-5..5", "5..1",
    "a..b", "1..2..3", "", ",", "1,,2", "1,", "x", "1e3..1e4", "1.5..4", "9" * 5000, "1..10:0", "1..10:-1",
    ",".join(["1"] * 2000), "nan..inf", "1..10:abc", "..", "1..", "..5", "1\x002", "1..10:", "1,-1", "1,0",
    "1..1000:0.5",
]


@pytest.mark.parametrize("text", BAD_RANGES)
def test_a_bad_range_is_refused_at_once(text):
    from archbench.spec import parse_range

    quick(parse_range, text, limit_s=0.5)


@pytest.mark.parametrize("points", [0, 1, -1, 1001, 100_000, 10**18, True])
def test_points_are_bounded(points):
    from archbench.spec import parse_range

    assert "--points" in quick(parse_range, "8..64", points)


def test_the_bounds_themselves_are_accepted():
    from archbench.spec import parse_range

    assert parse_range("1..1000:1") == list(range(1, 1001))
    values = parse_range("1000..1000000000", points=1000)  # steps of x1.0139, each at least 13 apart: all distinct
    assert len(values) == 1000 and values[0] == 1000 and values[-1] == 1_000_000_000
    assert parse_range("999999999,1000000000") == [999_999_999, 1_000_000_000]


# --- the claims expression language ---------------------------------------------------------------------------

FIGURES = {"x.y": [1, 2, 4], "x.zero": 0, "x.name": "resnet", "x.none": None}

FAILS_WHEN_EVALUATED = [
    "9**9**9", "2**5000", "10.0**400", "(-10)**301", "0.5**-2000", "x.y**1000", "1/0", "1//0", "1%0", "0**-1",
    "x.y/x.zero", "log10(x.zero)", "ratio([0, 1])", "'a'+1", "'a'<1", "x.name*10**9", "[1]*10**9", "'ab'*60000",
    "10**300*10**300*10**300*10**300*10**300", "sqrt(-1)", "len(5)", "[1][9]", "x.y[10]", "x.y[::0]",
    "min([])", "sum('abc')", "x.none+1", "-x.name", "abs('a')", "x.y[1.5]",
]


@pytest.mark.parametrize("text", FAILS_WHEN_EVALUATED)
def test_an_expression_that_fails_is_an_evaluation_error_in_milliseconds(text):
    from archbench.claims.expressions import EvaluationError, evaluate

    start = time.perf_counter()
    with pytest.raises(EvaluationError) as raised:
        evaluate(text, FIGURES)
    assert time.perf_counter() - start < 1
    assert "\n" not in str(raised.value)


REFUSED_WHEN_PARSED = [
    "1" + "+1" * 100_000, "-" * 100_000 + "1", "(" * 100_000 + "1" + ")" * 100_000, "not " * 50_000 + "1",
    "[" * 100_000 + "]" * 100_000, "-" * 200 + "1", "1" + "+1" * 60, "__import__('os')", "open('x')",
    "lambda: 1", "[i for i in x.y]", "1 if x.y else 2", "{1: 2}", "f'{x.y}'", "x.y.__class__()", "1; 2", "a = 1",
    "1\x002", "'" * 3, "x.y @ x.y", "x.y << 1", "~1", "(yield)", "await x", "*x.y",
]


@pytest.mark.parametrize("text", REFUSED_WHEN_PARSED, ids=lambda t: t[:30])
def test_an_expression_too_long_deep_or_foreign_is_refused_when_parsed(text):
    from archbench.claims.expressions import parse

    quick(parse, text, "checks[0].figure", limit_s=1.0)


@pytest.mark.parametrize("text", ["1/0", "9**9**9", "'a'+1", "x.name > 3", "x.y[7] == 1"])
def test_a_check_that_cannot_be_evaluated_is_not_measured_with_its_error(text):
    from archbench.claims.checks import NOT_MEASURED, run_check, verdict

    for check in ({"kind": "true", "says": "s", "figure": text},
                  {"kind": "near", "says": "s", "figure": "x.zero", "stated": text, "tol": 0.1},
                  {"kind": "true", "says": "s", "figure": "True", "when": text}):
        result = run_check(check, FIGURES)
        assert result.status == NOT_MEASURED and result.passed is None
        assert text in result.figures and "cannot evaluate" in result.figures
        assert verdict([result]) == NOT_MEASURED


def test_a_string_where_a_number_is_needed_is_not_measured():
    from archbench.claims.checks import NOT_MEASURED, run_check

    check = {"kind": "near", "says": "s", "figure": "x.name", "stated": "1", "tol": 0.1}
    assert run_check(check, FIGURES).status == NOT_MEASURED


def test_the_figures_line_shows_n_a_for_a_failing_placeholder():
    from archbench.claims.runner import fill

    assert fill("{1/0} and {x.y|.1f} and {x.name|,.0f} and {9**9**9}", FIGURES) == "n/a and [1.0, 2.0, 4.0] and n/a and n/a"


def test_bounded_expressions_still_compute():
    from archbench.claims.expressions import evaluate

    assert evaluate("2**10 * 10**290", {}) == 1024 * 10**290
    assert list(evaluate("x.y**2", FIGURES)) == [1, 4, 16]
    assert evaluate("'ab'*3", {}) == "ababab"
    assert math.isclose(evaluate("0.5**-100", {}), 2.0**100)


# --- numeric options of the commands --------------------------------------------------------------------------

@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0, 0.0, -1, -1e-9, 1e300, 8 * 24 * 3600, True, "1"])
def test_positive_finite_refuses(value):
    from archbench.cli.common import positive_finite

    assert "--min-time" in quick(positive_finite, "--min-time", value)


def test_positive_finite_accepts():
    from archbench.cli.common import positive_finite

    assert positive_finite("--timeout", 1e-3) == 1e-3 and positive_finite("--timeout", 600) == 600.0


@pytest.mark.parametrize("threads", [0, -1, 1025, 10**9, True])
def test_threads_are_bounded(threads):
    from archbench.cli.common import check_threads

    assert "--threads" in quick(check_threads, threads)


def test_threads_beyond_the_cores_are_a_warning(capsys):
    from archbench.cli.common import check_threads

    cores = os.cpu_count()
    assert check_threads(cores) == cores and capsys.readouterr().err == ""
    assert check_threads(cores + 1) == cores + 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: --threads") and f"{cores} cores" in err[0]


def archbench(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m archbench ARGS`` from this checkout, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "archbench", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.mark.parametrize("args", [
    ("scaling", "-m", "lstm", "--seq", "8..64", "--points", "abc"),
    ("latency", "mlp", "--min-time", "fast"),
    ("latency", "mlp", "--threads", "1.5"),
    ("memory", "mlp", "--timeout", ""),
    ("params", "lenet5", "--batch", "x"),
    ("flops", "lenet5", "--nope"),
    ("params",),
    ("no-such-command",),
    ("--no-such-global",),
])
def test_a_usage_error_is_one_line(args):
    start = time.perf_counter()
    done = archbench(*args)
    assert time.perf_counter() - start < 10
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--help" in lines[0], done.stderr


# --- the last line of defence ---------------------------------------------------------------------------------

def _failing(exc: BaseException):
    from archbench.cli.common import handle_errors

    @handle_errors
    def command():
        raise exc

    return command


def test_an_internal_error_is_one_line_naming_its_log(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.delenv("ARCHBENCH_DEBUG", raising=False)
    with pytest.raises(typer.Exit) as exited:
        _failing(RuntimeError("first line\nsecond line"))()
    assert exited.value.exit_code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("internal error: RuntimeError: first line (traceback in ")
    log = Path(err[0].rsplit("(traceback in ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path / "archbench" and log.name.startswith("internal-error-")
    assert "Traceback (most recent call last)" in log.read_text() and "second line" in log.read_text()


def test_debug_shows_the_traceback(monkeypatch, capsys):
    monkeypatch.setenv("ARCHBENCH_DEBUG", "1")
    with pytest.raises(typer.Exit) as exited:
        _failing(ZeroDivisionError("boom"))()
    assert exited.value.exit_code == 3
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and "ZeroDivisionError: boom" in err


def test_the_debug_option_turns_debugging_on(cli, monkeypatch):
    monkeypatch.delenv("ARCHBENCH_DEBUG", raising=False)
    assert cli("--debug", "list", "lenet*").exit_code == 0
    assert os.environ.get("ARCHBENCH_DEBUG") == "1"


@pytest.mark.parametrize(("exc", "code", "start"), [
    (UserError("bad thing\nmore"), 2, "error: bad thing"), (KeyboardInterrupt(), 130, "interrupted"),
])
def test_user_errors_and_ctrl_c_keep_their_codes(capsys, exc, code, start):
    with pytest.raises(typer.Exit) as exited:
        _failing(exc)()
    assert exited.value.exit_code == code
    assert capsys.readouterr().err.strip().splitlines() == [start]


# --- the memory worker dies with its parent -------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Running or sleeping (a zombie waiting for a reaper that is not there counts as dead)."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_memory_worker_dies_with_its_parent():
    parent = subprocess.Popen([sys.executable, "-m", "archbench", "memory", "transformer:layers=1", "--seq", "8192"],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while not workers and time.monotonic() < deadline and parent.poll() is None:
            workers = [pid for pid in _children(parent.pid)
                       if b"memory_worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            time.sleep(0.05)
        assert workers, "the memory worker never started"
        time.sleep(1.0)  # the worker is past its start-up, importing torch or building
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while _alive(workers[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(workers[0]), "the worker outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
