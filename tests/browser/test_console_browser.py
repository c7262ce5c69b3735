"""The console in a real browser: log in, resolve an ambiguous user from the conflicts page of a
sandbox run, sync from the console, see the conflict gone, assign a licence in the matrix. A
screenshot of each page is saved on the way (at 1280 px, and two at a phone's width)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from jobs.config import load_config
from jobs.state import StateStore
from jobs.sync.cycle import run_once
from jobs.wiring import webitel_client
from jobs.worker.console.access import Access
from jobs.worker.console.ops import ConsoleOps, history_health
from jobs.worker.http import StatusServer
from consolekit import METRICS, TOKEN
from workerkit import config_data

pytestmark = pytest.mark.e2e

WIDE, PHONE = (1280, 900), (390, 844)


@pytest.fixture
def live(make_sandbox, tmp_path):
    """The console on a real port over a sandbox after one run (its conflicts open)."""
    box = make_sandbox()
    config = load_config(data=config_data(box, f"sqlite:///{tmp_path / 'state.sqlite'}"))
    assert [r.outcome for r in run_once(config)] == ["conflicts", "in_sync"]
    with StateStore.open(config.state.url) as store:
        ops = ConsoleOps(config, store, health=history_health(config, store))
        server = StatusServer(
            "127.0.0.1",
            0,
            health=ops.health,
            console=ops,
            access=Access(TOKEN),
            metrics=lambda: ("text/plain; version=0.0.4", METRICS),
        ).start()
        server.box, server.config, server.ops = box, config, ops
        try:
            yield server
        finally:
            for launch in ops.launches():
                launch.done.wait(60)
            server.stop()


def shoot(driver, folder: Path, name: str, size: tuple[int, int] = WIDE) -> None:
    """The whole page at ``size``'s width (a phone's as a phone shows it) as ``name.png``.

    The viewport is set through the DevTools protocol: a window's size includes whatever the
    browser draws around the page, and a window grown to the page's height still stops at it.
    """
    metrics = {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": size == PHONE}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {**metrics, "height": min(max(size[1], height), 3000)}
    )
    time.sleep(0.2)
    try:
        assert driver.save_screenshot(str(folder / f"{name}.png"))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def flash(driver) -> str:
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "p.flash"))


def open_conflicts_text(driver) -> str:
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "article.conflict"))


def test_resolve_sync_and_assign_in_a_browser(browser, live, screenshots):
    base = live.url
    wait = WebDriverWait(browser, 90)

    # Log in: the console sends the browser to its login page, then back where it wanted to go.
    browser.get(base + "/conflicts")
    wait.until(seen.presence_of_element_located((By.ID, "secret")))
    shoot(browser, screenshots, "login")
    browser.find_element(By.ID, "secret").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait.until(seen.url_to_be(base + "/conflicts"))
    assert "c.osullivan" in open_conflicts_text(browser)
    shoot(browser, screenshots, "conflicts")
    shoot(browser, screenshots, "conflicts-phone", PHONE)

    # Link the ambiguous user to the contact named exactly like its display name.
    article = next(
        a for a in browser.find_elements(By.CSS_SELECTOR, "article.conflict") if "c.osullivan" in a.text
    )
    link = next(
        b
        for b in article.find_elements(By.CSS_SELECTOR, "ul.candidates button")
        if "to contact Clodagh O'Sullivan (" in b.get_attribute("aria-label")
    )
    link.click()
    wait.until(lambda d: "linked to contact" in flash(d))
    assert "the next sync applies it" in open_conflicts_text(browser)

    # Sync from the console: the run's page reloads itself until the run has ended.
    browser.find_element(By.CSS_SELECTOR, ".toolbar form[action='/runs'] button").click()
    wait.until(lambda d: "/runs/" in d.current_url)
    wait.until(
        lambda d: (
            not d.find_elements(By.CSS_SELECTOR, "p.progress")
            and d.find_elements(By.CSS_SELECTOR, "dl.facts .badge")
        )
    )
    assert "conflicts" in browser.find_element(By.CSS_SELECTOR, "dl.facts .badge").text
    shoot(browser, screenshots, "run")

    # The conflict is gone; the other ones stay.
    browser.get(base + "/conflicts")
    remaining = open_conflicts_text(browser)
    assert "c.osullivan" not in remaining and "duplicate extension" in remaining

    # Assign a licence in the matrix, as in the Webitel admin's Users tab.
    licenses = webitel_client(live.config).list_licenses()
    special = {v for v in live.box.data.notes.values() if isinstance(v, str)}
    valid = next(
        l
        for l in licenses
        if l.serial not in special
        and l.remain > 0
        and (l.valid_till is None or l.valid_till.timestamp() > time.time() + 86400 * 60)
        and not l.concurrent
    )
    held = {s.lower() for s in webitel_client(live.config).find_user("c.osullivan").serials}
    if valid.serial.lower() in held:  # the sample data already granted it: take it back first
        webitel_client(live.config).set_user_licenses(
            webitel_client(live.config).find_user("c.osullivan").id,
            [s for s in held if s != valid.serial.lower()],
        )
    browser.get(base + "/licenses/users")
    box = f"button.box[data-user='c.osullivan'][data-serial='{valid.serial}']"
    assert browser.find_element(By.CSS_SELECTOR, box).get_attribute("aria-checked") == "false"
    browser.find_element(By.CSS_SELECTOR, box).click()
    wait.until(lambda d: "assigned to" in flash(d))
    assert browser.find_element(By.CSS_SELECTOR, box).get_attribute("aria-checked") == "true"
    assert valid.serial.lower() in {
        s.lower() for s in webitel_client(live.config).find_user("c.osullivan").serials
    }
    shoot(browser, screenshots, "matrix")

    # The other pages, for the README (each must render, with its own heading).
    for path, name, heading in (
        ("/", "overview", "Overview"),
        ("/runs", "runs", "Runs"),
        ("/licenses", "licenses", "Licences"),
        ("/users/c.osullivan", "user", "c.osullivan"),
    ):
        browser.get(base + path)
        assert browser.find_element(By.TAG_NAME, "h1").text == heading
        shoot(browser, screenshots, name)
    browser.get(base + "/")
    shoot(browser, screenshots, "overview-phone", PHONE)
    assert TOKEN not in browser.page_source
