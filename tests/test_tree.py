"""The tree tells the truth: every test file on disk is collected by the suite's own pytest
configuration, and ruff checks every Python file under ``src/``.

Folders named ``dist`` or ``build`` are skipped by pytest's and ruff's defaults; these tests fail
when any test or source file is silently left out again.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*argv: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=600,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return proc.stdout


def test_every_test_file_is_collected() -> None:
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py")}
    out = _run("pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests")
    collected = {line.split("::", 1)[0] for line in out.splitlines() if "::" in line}
    assert on_disk, "no test files found"
    assert on_disk - collected == set(), "test files on disk that pytest does not collect"


def test_ruff_checks_every_source_file() -> None:
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "src").rglob("*.py")}
    out = _run("ruff", "check", "--show-files", "src")
    checked = {Path(line.strip()).resolve().relative_to(ROOT).as_posix()
               for line in out.splitlines() if line.strip().endswith(".py")}
    assert on_disk - checked == set(), "source files ruff does not check"
