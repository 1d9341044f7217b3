"""Headless Chromium for the dashboard tests, driven through selenium and Debian's chromedriver.

Missing ``chromium``/``chromedriver``/selenium skips the test (fails under BEAMLINK_REQUIRE_ALL=1).
Runs as root with the sandbox off, a fresh profile and no background network traffic.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

from tests.support.require import missing, require_tool

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)


def chromium() -> str:
    """The chromium binary, or skip/fail."""
    return require_tool("chromium")


@contextlib.contextmanager
def browser(window: str = "1400,900") -> Iterator[Any]:
    """A selenium WebDriver on a headless Chromium with a throwaway profile."""
    binary = chromium()
    driver_path = require_tool("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed (pip install -e '.[test]')")
    profile = tempfile.mkdtemp(prefix="beamlink-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(url: str, path: str, window: str = "1400,900", wait_ms: int = 6000) -> None:
    """``chromium --screenshot`` of ``url`` once it has shown live data for ``wait_ms``."""
    profile = tempfile.mkdtemp(prefix="beamlink-chromium-")
    try:
        subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}",
             f"--window-size={window}", "--hide-scrollbars", f"--timeout={wait_ms}",
             url],
            check=True, capture_output=True, timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
