"""What the browser tests share: Debian's Chromium started headless through Playwright, a page
that records script errors and saves screenshots, and the checks' small helpers."""

import json
import os
import sys
import urllib.request

CHROMIUM = os.environ.get("LAKESCOPE_CHROMIUM", "/usr/bin/chromium")


def expect(what: str, got, want) -> None:
    if got != want:
        sys.exit(f"{what}: page shows {got!r}, expected {want!r}")


def api(url: str, path: str) -> dict:
    with urllib.request.urlopen(url.rstrip("/") + "/api/v1/" + path) as res:
        return json.load(res)


def open_page(playwright, shots: str):
    """(browser, page, errors, shot): errors collects uncaught script errors; shot(name) saves
    a full-page screenshot as SHOTS/name.png."""
    os.makedirs(shots, exist_ok=True)
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def shot(name: str) -> None:
        page.screenshot(path=os.path.join(shots, name + ".png"), full_page=True)

    return browser, page, errors, shot
