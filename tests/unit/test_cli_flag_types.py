"""The flags' value checkers (``localcsi.cli_flag_types``), as the command applies them: a value one
refuses is a usage error, exit status 2."""

from __future__ import annotations

import pytest

from localcsi import cli

pytestmark = pytest.mark.unit


def exit_status(argv: list[str]) -> int | str | None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    return exited.value.code


@pytest.mark.parametrize(
    "argv",
    [
        ["plugin", "--endpoint", "http://localhost:1"],
        ["plugin", "--endpoint", "unix://relative.sock"],
        ["plugin", "--endpoint", "tcp://localhost"],
        ["plugin", "--max-volumes-per-node", "-1"],
        ["plugin", "--metrics-address", "localhost"],
        ["plugin", "--health-address", "localhost"],
        ["plugin", "--health-address", "127.0.0.1:0"],
        ["plugin", "--registration-dir", "relative/dir", "--kubelet-registration-path", "/k/csi.sock"],
        ["plugin", "--registration-dir", "/registry", "--kubelet-registration-path", "unix:///k/csi.sock"],
        ["agent", "--resync-seconds", "0"],
        ["agent", "--metrics-address", "9810"],
        ["controller", "--metrics-address", "[::]"],
        ["extender", "--listen", "127.0.0.1:70000"],
        ["webhook", "--tls-cert-file", "cert.pem", "--tls-key-file", "/k.pem"],
        ["--log-level", "trace", "status"],
    ],
)
def test_bad_flag_values_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_status(argv) == 2
    assert "localcsi" in capsys.readouterr().err


def test_invalid_log_level_in_environment_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(cli.LOG_LEVEL_ENV, "verbose")
    assert exit_status(["status"]) == 2
    assert "'verbose' is not one of debug, info, warning, error" in capsys.readouterr().err
