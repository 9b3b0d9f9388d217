"""The page in a real browser for the integration tests: headless Chromium and signing in as a
person does (the form, then the profile page shown)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000"]


def chromium(language: str | None = None) -> webdriver.Chrome:
    """A fresh browser; ``language`` ("en", "ru"): the one it asks pages in."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    flags = CHROMIUM_FLAGS + [f"--user-data-dir={tempfile.mkdtemp(prefix='pbx-chromium-')}"]
    if language:
        flags += [f"--lang={language}", "--autoplay-policy=no-user-gesture-required"]
        options.add_experimental_option("prefs", {"intl.accept_languages": "ru-RU,ru" if language == "ru" else "en-US,en"})
    for flag in flags:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def sign_in(browser: webdriver.Chrome, url: str, name: str, password: str) -> WebDriverWait:
    """Signs in on the form and waits for the profile the page then shows; the wait is for the
    test's next steps."""
    wait = WebDriverWait(browser, 20)
    browser.get(url + "/login")
    browser.find_element(By.NAME, "name").send_keys(name)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    wait.until(EC.visibility_of_element_located((By.ID, "summary")))
    return wait


def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PBX_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
