"""The alert rules: promtool accepts them, and its unit tests (deploy/prometheus/localcsi-rules.test.yaml,
synthetic series) pass, with every alert shown both firing and not firing.

promtool comes with the Debian package `prometheus` (hack/install-deps installs it): without it these tests
fail and say so, they do not skip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcsi.testing.prometheus import binary

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
CHART_RULES = DEPLOY / "helm" / "localcsi" / "files" / "localcsi-rules.yaml"
RULES = DEPLOY / "prometheus" / "localcsi-rules.yaml"
RULES_TEST = DEPLOY / "prometheus" / "localcsi-rules.test.yaml"


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, check=False, cwd=cwd)


def alert_names() -> list[str]:
    groups = yaml.safe_load(CHART_RULES.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules_passes() -> None:
    result = promtool("check", "rules", str(CHART_RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass(tmp_path: Path) -> None:
    # Against the chart's file itself (deploy/prometheus/ holds a copy, checked fresh by test_kustomize_base).
    shutil.copy(CHART_RULES, tmp_path / RULES.name)
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    result = promtool("test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_fails_a_broken_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: move one threshold and they do."""
    text = CHART_RULES.read_text()
    assert text.count("localcsi_thin_pool_metadata_percent > 80") == 1
    (tmp_path / RULES.name).write_text(text.replace("metadata_percent > 80", "metadata_percent > 90"))
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    result = promtool("test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert result.returncode != 0 and "LocalcsiThinPoolMetadataFilling" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests: list[dict[str, Any]] = yaml.safe_load(RULES_TEST.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    names = set(alert_names())
    assert len(names) == len(alert_names()), "two alerts of one name"
    assert firing == names, f"never shown firing: {names - firing}"
    assert quiet == names, f"never shown quiet: {names - quiet}"


def test_every_alert_has_a_severity_summary_and_description() -> None:
    groups = yaml.safe_load(CHART_RULES.read_text())["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert rule["alert"].startswith("Localcsi"), rule["alert"]


def test_a_missing_promtool_fails_with_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(AssertionError, match=r"promtool is not on PATH: install the Debian package `prometheus`"):
        promtool("--version")
