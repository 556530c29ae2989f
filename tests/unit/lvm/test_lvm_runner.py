import os
import sys
import time
from pathlib import Path

import pytest
from pytest_subprocess import FakeProcess

from localcsi.core.errors import Internal, Unavailable
from localcsi.lvm.runner import NSENTER_PREFIX, CommandFailed, CommandTimedOut, SubprocessRunner

pytestmark = pytest.mark.unit

PY = sys.executable


def test_runs_an_argv_and_captures_output() -> None:
    result = SubprocessRunner().run([PY, "-c", "import sys; print('out'); print('err', file=sys.stderr)"])
    assert (result.stdout, result.stderr, result.returncode) == ("out\n", "err\n", 0)
    assert result.argv[0] == PY and result.seconds >= 0


def test_lvm_environment_is_set() -> None:
    code = "import os; print(os.environ['LC_ALL'], os.environ['LVM_SUPPRESS_FD_WARNINGS'], os.environ['EXTRA'])"
    result = SubprocessRunner(extra_env={"EXTRA": "x"}).run([PY, "-c", code])
    assert result.stdout.split() == ["C", "1", "x"]


def test_stdin_is_closed_so_prompts_cannot_hang() -> None:
    result = SubprocessRunner(timeout=10).run([PY, "-c", "import sys; print(repr(sys.stdin.read()))"])
    assert result.stdout.strip() == "''"


def test_non_zero_exit_raises_command_failed_with_stderr() -> None:
    with pytest.raises(CommandFailed) as raised:
        SubprocessRunner().run(
            [PY, "-c", "import sys; sys.stderr.write('  Volume group \"x\" not found\\n'); sys.exit(5)"]
        )
    failure = raised.value
    assert failure.returncode == 5 and failure.argv[0] == PY
    assert 'Volume group "x" not found' in failure.stderr
    assert "exit status 5" in str(failure) and 'Volume group "x" not found' in str(failure)
    assert isinstance(failure, Internal) and failure.code == "INTERNAL"


def test_a_missing_executable_is_a_command_failure() -> None:
    with pytest.raises(CommandFailed, match="cannot execute") as raised:
        SubprocessRunner().run(["/nonexistent/lvs"])
    assert raised.value.returncode == 127


def test_no_shell_interprets_the_arguments(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(CommandFailed):
        SubprocessRunner().run([f"true; touch {marker}"])
    result = SubprocessRunner().run([PY, "-c", "import sys; print(sys.argv[1])", f"$(touch {marker}); `id`"])
    assert result.stdout.strip() == f"$(touch {marker}); `id`"
    assert not marker.exists()


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "survivor"
    # The child forks a grandchild (as nsenter --pid does); both must die at the timeout.
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    time.sleep(1.5)\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    os._exit(0)\n"
        "time.sleep(30)\n"
    )
    started = time.monotonic()
    with pytest.raises(CommandTimedOut) as raised:
        SubprocessRunner().run([PY, "-c", code], timeout=0.5)
    assert time.monotonic() - started < 10
    assert isinstance(raised.value, Unavailable) and "0.5s" in str(raised.value)
    time.sleep(2)
    assert not marker.exists()


def test_nsenter_prefix_enters_pid_1s_namespaces(fp: FakeProcess) -> None:
    fp.register([*NSENTER_PREFIX, "vgs", "--version"], stdout="LVM version: 2.03.16(2)\n")
    result = SubprocessRunner(nsenter=True).run(["vgs", "--version"])
    assert result.argv == (
        "nsenter",
        "--target",
        "1",
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        "--pid",
        "--",
        "vgs",
        "--version",
    )
    assert "2.03.16" in result.stdout


@pytest.mark.parametrize("argv", [[], ["lvs", 3], "lvs -a"])
def test_argv_must_be_a_list_of_strings(argv: object) -> None:
    with pytest.raises(TypeError, match="argv"):
        SubprocessRunner().full_argv(argv)  # type: ignore[arg-type]


def test_the_parent_environment_is_kept() -> None:
    assert SubprocessRunner().env["PATH"] == os.environ["PATH"]
