"""Fail CI when the tests of one file were skipped (default: tests/test_fracatlas.py, which needs shared/fracatlas).

    python scripts/check_no_skips.py REPORT [--file tests/test_fracatlas.py ...]

REPORT is pytest's JUnit XML (``--junitxml=REPORT``) or its text output with ``-rs`` (the ``SKIPPED [n] file:line:
reason`` lines). Exit 1, naming each skipped test and its reason, when a test of the file was skipped (an xfail is
not a skip), or, for JUnit XML, when the report holds no test of the file at all (it was not collected); else exit 0.
"""

from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def junit_skips(text: str, test_file: str) -> tuple[int, list[str]]:
    """(tests of the file in the report, "name: reason" of each skipped one) from JUnit XML."""
    module = Path(test_file).with_suffix("").as_posix().replace("/", ".")
    ran, skipped = 0, []
    for case in ET.fromstring(text).iter("testcase"):
        cls, file = case.get("classname", ""), case.get("file", "")
        if not (cls == module or cls.startswith(module + ".") or file == test_file):
            continue
        ran += 1
        for s in case.findall("skipped"):
            if s.get("type") != "pytest.xfail":
                skipped.append(f"{case.get('name')}: {s.get('message', '')}")
    return ran, skipped


def rs_skips(text: str, test_file: str) -> list[str]:
    """The ``SKIPPED [n] file:line: reason`` lines of ``pytest -rs`` output that name the file."""
    pat = re.compile(r"^SKIPPED \[\d+\] " + re.escape(test_file) + r"(:\d+)?: (.*)$")
    return [m.group(0) for line in text.splitlines() if (m := pat.match(line.strip()))]


DEFAULT_FILES = ("tests/test_fracatlas.py", "tests/test_fracatlas_edition.py")  # the tests that need shared/fracatlas


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="pytest JUnit XML (--junitxml) or -rs text output")
    ap.add_argument("--file", action="append", help="a test file that must not skip (repeatable; default: "
                    f"{', '.join(DEFAULT_FILES)})")
    args = ap.parse_args(argv)
    status = 0
    for test_file in args.file or DEFAULT_FILES:
        status = max(status, check(args.report, test_file))
    return status


def check(report: Path, test_file: str) -> int:
    """0 when no test of `test_file` was skipped in `report`, 1 when some were (or none ran), 2 when it is unreadable."""
    args = argparse.Namespace(report=report, file=test_file)
    try:
        text = args.report.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        print(f"check_no_skips: {args.report}: cannot read ({exc})", file=sys.stderr)
        return 2
    if text.lstrip().startswith("<"):
        try:
            ran, skipped = junit_skips(text, args.file)
        except ET.ParseError as exc:
            print(f"check_no_skips: {args.report}: not valid JUnit XML ({exc})", file=sys.stderr)
            return 2
        if not ran:
            print(f"check_no_skips: {args.report} holds no test of {args.file}: it was not collected", file=sys.stderr)
            return 1
    else:
        skipped = rs_skips(text, args.file)
    if skipped:
        print(f"check_no_skips: {len(skipped)} test(s) of {args.file} skipped in CI (they must run):", file=sys.stderr)
        for s in skipped:
            print(f"  {s}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
