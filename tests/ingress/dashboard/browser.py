"""Debian's headless Chromium driven by selenium through Debian's chromedriver.

No browser or driver is downloaded: both come from the system (`dlr tools fetch`
installs them); a missing one fails the test. Every page's console is read back so a
test can assert there was no error.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1800",
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: run `dlr tools fetch` (make test does)"
    return path


class Browser:
    """A fresh headless Chromium (own profile directory) for one test."""

    def __init__(self, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="dlr-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = _tool("chromium")
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(_tool("chromedriver")))
        self.logs: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _wait(self, check: Any, what: str) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"page: not within {self.timeout}s: {what}")
            time.sleep(0.1)

    def loads(self) -> int:
        """How many refreshes the page completed (body data-loaded)."""
        value = self.driver.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
        return int(value or 0)

    def open(self, url: str) -> None:
        """Load the page and wait for its first complete refresh."""
        self.driver.get(url)
        self._wait(lambda: self.loads() >= 1, "the first refresh")

    def tiles(self, ids: tuple[str, ...]) -> dict[str, str]:
        """The raw value (data-value) of each tile."""
        return {i: str(self.driver.find_element(By.ID, i).get_attribute("data-value")) for i in ids}

    def rows(self, table: str) -> list[str]:
        """The text of each body row of a table."""
        found = self.driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")
        return [str(r.text) for r in found]

    def select(self, select_id: str, value: str) -> None:
        """Choose an option; the page refreshes without reloading."""
        before = self.loads()
        Select(self.driver.find_element(By.ID, select_id)).select_by_value(value)
        self._wait(lambda: self.loads() > before, f"a refresh after choosing {value}")

    def wait_text(self, table: str, text: str) -> bool:
        """Wait until a row of the table contains the text."""
        return bool(self._wait(lambda: any(text in r for r in self.rows(table)), text))

    def screenshot(self, path: Path) -> None:
        """Save a PNG of the page."""
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path)), "no screenshot"

    def errors(self) -> list[str]:
        """Console messages of level SEVERE (errors) so far."""
        self.logs.extend(self.driver.get_log("browser"))
        return [str(e["message"]) for e in self.logs if e.get("level") == "SEVERE"]
