"""A real browser (Debian's chromium through chromium-driver, driven by selenium) against the
console served by the worker's HTTP server (uvicorn on a loopback port) over a sandbox.

Skipped, saying why, where chromium or its driver is missing (``.ci/run`` installs both when it
runs as root with apt; elsewhere: ``apt-get install -y chromium chromium-driver``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "worker"))

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def sandbox_defaults() -> dict:
    return {"users": 30, "seed": 5}  # seed 5: an ambiguous user (c.osullivan), an extension clash


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip(
            "no chromium and chromium-driver here: the browser tests need Debian's packages "
            "(apt-get install -y chromium chromium-driver, as root)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--no-first-run",
        "--disable-extensions",
        "--lang=en-GB",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Where the test saves its screenshots: ``$WCSYNC_SCREENSHOTS`` (``docs/screenshots`` to
    refresh the README's), else a temporary folder."""
    wanted = os.environ.get("WCSYNC_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
