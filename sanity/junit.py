"""Reads csi-sanity's JUnit report (ginkgo's format) into passed / failed / skipped test names."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


@dataclass
class SanityReport:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def unexplained_skips(self, explained: dict[str, str]) -> list[str]:
        return [name for name in self.skipped if not any(re.search(p, name) for p in explained)]

    def summary(self) -> str:
        return f"{len(self.passed)} passed, {len(self.failed)} failed, {len(self.skipped)} skipped"


def parse_junit(xml_text: str) -> SanityReport:
    report = SanityReport()
    root = ET.fromstring(xml_text)  # noqa: S314 - trusted input, see above
    for case in root.iter("testcase"):
        name = case.get("name", "")
        suite_hook = name.startswith(("[BeforeSuite]", "[AfterSuite]"))
        if suite_hook and case.find("failure") is None and case.find("error") is None:
            continue
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        skipped = case.find("skipped")
        if problem is not None:
            report.failed[name] = (problem.get("message") or "") + "\n" + (problem.text or "")[-2000:]
        elif skipped is not None:
            report.skipped[name] = skipped.get("message") or ""
        else:
            report.passed.append(name)
    return report
