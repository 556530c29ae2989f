from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import localcsi
from localcsi import cli

pytestmark = pytest.mark.unit

SRC_DIR = Path(localcsi.__file__).resolve().parents[1]
COMMANDS = ("plugin", "agent", "controller", "extender", "webhook", "status")
FLAGS = {
    "plugin": (
        "--mode {standalone,controller,node}",
        "--endpoint",
        "--node-id",
        "--socket-group",
        "--kubeconfig",
        "--lvm-nsenter",
        "--max-volumes-per-node",
        "--metrics-address",
        "--registration-dir DIR",
        "--kubelet-registration-path PATH",
        "--health-address HOST:PORT",
    ),
    "agent": ("--node-name", "--kubeconfig", "--resync-seconds", "--lvm-nsenter", "--orphan-gc-grace", "--orphan-gc"),
    "controller": (
        "--kubeconfig",
        "--leader-elect, --no-leader-elect",
        "--lease-namespace",
        "--lease-name",
        "--init-config",
        "--resync-seconds",
    ),
    "extender": ("--listen", "--kubeconfig", "--strategy {binpack,spread}", "--reservation-ttl"),
    "webhook": ("--listen", "--tls-cert-file PATH", "--tls-key-file PATH", "--kubeconfig", "--metrics-address"),
    "status": ("--kubeconfig", "--output {table,json}"),
}
NODE_ENV = ("NODE_NAME", "KUBE_NODE_NAME", "POD_NAMESPACE", cli.LOG_LEVEL_ENV)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in NODE_ENV:
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(SRC_DIR), **(env or {})}
    for name in NODE_ENV:
        if name not in (env or {}):
            environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "localcsi", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=30,
        check=False,
    )


def exit_status(argv: list[str]) -> int | str | None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    return exited.value.code


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(argv)


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_status(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: localcsi ")
    for command in COMMANDS:
        assert f"\n    {command} " in out
    assert "--log-level {debug,info,warning,error}" in out
    assert "--log-format {json,text}" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_documents_its_flags(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_status([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: localcsi {command} ")
    for flag in (*FLAGS[command], "--log-level", "--log-format"):
        assert flag in out


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_in_a_subprocess(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: localcsi {command} ")
    assert all(flag in result.stdout for flag in FLAGS[command])


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"localcsi {localcsi.__version__}\n"


def test_help_does_not_import_heavy_dependencies() -> None:
    probe = (
        "import sys\n"
        "from localcsi.cli import main\n"
        "try:\n    main(['plugin', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'grpc', 'kubernetes', 'prometheus_client'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC_DIR)},
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "argv",
    [
        ["bogus"],
        [],
        ["plugin", "--mode", "cluster"],
        ["webhook", "--tls-key-file", "/k.pem"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_status(argv) == 2
    assert "localcsi" in capsys.readouterr().err


def test_unknown_command_in_a_subprocess_exits_2() -> None:
    result = run_cli("bogus")
    assert result.returncode == 2
    assert "invalid choice: 'bogus'" in result.stderr


def test_registry_covers_exactly_the_commands() -> None:
    assert set(cli.COMMAND_RUNNERS) == set(COMMANDS)
    for command in COMMANDS:
        assert callable(cli.resolve_runner(command))  # every module and function exists


def test_registered_runner_is_imported_lazily_and_called(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = "localcsi_fake_status_runner"
    (tmp_path / f"{module}.py").write_text(
        "def run(args):\n    return 7 if (args.output, args.kubeconfig) == ('json', '/k') else 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.COMMAND_RUNNERS, "status", f"{module}:run")
    monkeypatch.delitem(sys.modules, module, raising=False)

    assert module not in sys.modules
    assert cli.main(["status", "--output", "json", "--kubeconfig", "/k"]) == 7
    assert module in sys.modules


def test_plugin_defaults() -> None:
    args = parse("plugin")
    assert args.mode == "standalone"
    assert args.endpoint == "unix:///csi/csi.sock"
    assert args.node_id == socket.gethostname()
    assert args.socket_group is None
    assert args.lvm_nsenter is False
    assert args.max_volumes_per_node == 0
    assert args.metrics_address == ""
    assert (args.registration_dir, args.kubelet_registration_path, args.health_address) == ("", "", "")
    assert (args.log_level, args.log_format) == ("info", "json")


def test_plugin_flags_parse() -> None:
    args = parse(
        "plugin",
        *("--mode", "node", "--endpoint", "tcp://127.0.0.1:10000", "--socket-group", "csi"),
        *("--lvm-nsenter", "--max-volumes-per-node", "250", "--metrics-address", ":9808"),
    )
    assert (args.mode, args.endpoint, args.socket_group) == ("node", "tcp://127.0.0.1:10000", "csi")
    assert (args.lvm_nsenter, args.max_volumes_per_node, args.metrics_address) == (True, 250, ":9808")


def test_node_id_prefers_node_name_then_kube_node_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBE_NODE_NAME", "kube-node")
    assert parse("plugin").node_id == "kube-node"
    assert parse("agent").node_name == "kube-node"
    monkeypatch.setenv("NODE_NAME", "node-a")
    assert parse("plugin").node_id == "node-a"
    assert parse("plugin", "--node-id", "explicit").node_id == "explicit"


def test_other_command_defaults() -> None:
    agent = parse("agent")
    assert (agent.kubeconfig, agent.resync_seconds, agent.orphan_gc_grace) == (None, 60, 0)
    controller = parse("controller")
    assert (controller.leader_elect, controller.lease_namespace) == (True, "localcsi-system")
    assert controller.lease_name == "localcsi-controller"
    assert parse("controller", "--no-leader-elect").leader_elect is False
    extender = parse("extender")
    assert (extender.listen, extender.strategy) == ("127.0.0.1:8099", "binpack")
    assert parse("status").output == "table"
    webhook = parse("webhook", "--tls-cert-file", "/tls/tls.crt", "--tls-key-file", "/tls/tls.key")
    assert (webhook.listen, webhook.tls_cert_file, webhook.metrics_address) == ("0.0.0.0:9443", "/tls/tls.crt", "")


def test_lease_namespace_follows_pod_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "storage")
    assert parse("controller").lease_namespace == "storage"


def test_log_level_from_environment_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli.LOG_LEVEL_ENV, "DEBUG")
    assert parse("status").log_level == "debug"
    assert parse("--log-level", "error", "status").log_level == "error"
    assert parse("status", "--log-level", "warning").log_level == "warning"


def test_logging_flags_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("--log-level", "debug", "--log-format", "text", "agent", "--log-format", "json")
    assert (args.log_level, args.log_format) == ("debug", "json")
    assert cli.main(["status", "--kubeconfig", "/nonexistent", "--log-level", "error", "--log-format", "text"]) == 1
    assert " ERROR   localcsi.status: cannot read NodeLocalStorage" in capsys.readouterr().err


def test_plugin_registration_and_health_flags_parse() -> None:
    args = cli.parse_args(
        [
            *("plugin", "--mode", "node", "--registration-dir", "/var/lib/kubelet/plugins_registry"),
            *("--kubelet-registration-path", "/var/lib/kubelet/plugins/localcsi.io/csi.sock"),
            *("--health-address", ":9808"),
        ]
    )
    assert args.registration_dir == "/var/lib/kubelet/plugins_registry"
    assert args.kubelet_registration_path == "/var/lib/kubelet/plugins/localcsi.io/csi.sock"
    assert args.health_address == ":9808"
    standalone = ("plugin", "--registration-dir", "/r", "--kubelet-registration-path", "/k/csi.sock")
    assert cli.parse_args(standalone).registration_dir == "/r"


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (
            ["plugin", "--mode", "node", "--registration-dir", "/r"],
            "--kubelet-registration-path is required with --registration-dir",
        ),
        (
            ["plugin", "--mode", "node", "--kubelet-registration-path", "/k/csi.sock"],
            "--kubelet-registration-path is only used with --registration-dir",
        ),
        (
            ["plugin", "--mode", "controller", "--registration-dir", "/r", "--kubelet-registration-path", "/k"],
            "--registration-dir: a --mode controller plugin has no Node service to register with the kubelet",
        ),
    ],
)
def test_plugin_registration_flags_must_go_together(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_status(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: localcsi plugin ")
    assert err.endswith(f"localcsi plugin: error: {problem}\n")


@pytest.mark.parametrize("command", ["agent", "controller"])
def test_agent_and_controller_take_a_metrics_address(command: str) -> None:
    assert cli.parse_args([command]).metrics_address == ""
    assert cli.parse_args([command, "--metrics-address", ":9810"]).metrics_address == ":9810"
