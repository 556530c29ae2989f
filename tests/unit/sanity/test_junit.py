from __future__ import annotations

import pytest

from sanity.junit import parse_junit

pytestmark = pytest.mark.unit

REPORT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5" disabled="0" errors="0" failures="1">
  <testsuite name="CSI Driver Test Suite" tests="5" failures="1" errors="0" skipped="1">
    <testcase name="[BeforeSuite]" status="passed"></testcase>
    <testcase name="[It] Node Service should work" status="passed"></testcase>
    <testcase name="[It] Controller Service CreateVolume should fail" status="failed">
      <failure message="Expected an error" type="failed">rpc error: code = Internal</failure>
    </testcase>
    <testcase name="[It] ListSnapshots should page" status="skipped">
      <skipped message="skipped - ListSnapshots not supported"></skipped>
    </testcase>
    <testcase name="[AfterSuite]" status="passed"></testcase>
  </testsuite>
</testsuites>
"""


def test_parse_sorts_cases_and_ignores_passing_suite_hooks() -> None:
    report = parse_junit(REPORT)
    assert report.passed == ["[It] Node Service should work"]
    assert list(report.failed) == ["[It] Controller Service CreateVolume should fail"]
    assert "rpc error: code = Internal" in report.failed["[It] Controller Service CreateVolume should fail"]
    assert report.skipped == {"[It] ListSnapshots should page": "skipped - ListSnapshots not supported"}
    assert report.summary() == "1 passed, 1 failed, 1 skipped"


def test_unexplained_skips_are_those_no_pattern_matches() -> None:
    report = parse_junit(REPORT)
    assert report.unexplained_skips({}) == ["[It] ListSnapshots should page"]
    assert report.unexplained_skips({r"ListSnapshots should page": "not supported"}) == []


def test_failing_suite_hook_counts_as_failure() -> None:
    broken = REPORT.replace(
        '<testcase name="[BeforeSuite]" status="passed"></testcase>',
        '<testcase name="[BeforeSuite]" status="failed"><failure message="no socket"/></testcase>',
    )
    assert "[BeforeSuite]" in parse_junit(broken).failed
