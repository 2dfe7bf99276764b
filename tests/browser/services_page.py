"""Drives the services page in headless Chromium (Debian's, through Playwright) the way an
engineer uses it, against a running Lakescope fed with known spans over OTLP/HTTP JSON.

Usage: services_page.py DASHBOARD_URL OTLP_HTTP_URL [SCREENSHOT.png]
Exits non-zero, saying what differed, when the page does not show what the data says.
"""

import json
import os
import sys
import time
import urllib.request

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("LAKESCOPE_CHROMIUM", "/usr/bin/chromium")


def send(otlp: str, service: str, durations_ms: list, errors: int, offset: int) -> None:
    """One SERVER span per trace; the first `errors` of them failing."""
    now = time.time_ns()
    spans = []
    for i, ms in enumerate(durations_ms):
        start = now - 30 * 10**9 + i * 10**6
        spans.append({
            "traceId": format(offset + i + 1, "032x"),
            "spanId": format(offset + i + 1, "016x"),
            "name": "GET /api",
            "kind": 2,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + ms * 10**6),
            "status": {"code": 2 if i < errors else 0},
        })
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"spans": spans}],
    }]}
    req = urllib.request.Request(otlp + "/v1/traces", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as res:
        assert res.status == 200, res.status


def cell(page, service: str, field: str) -> str:
    return page.inner_text(f'tr[data-service="{service}"] td[data-field="{field}"]')


def expect(what: str, got, want) -> None:
    if got != want:
        sys.exit(f"{what}: page shows {got!r}, expected {want!r}")


def main() -> None:
    url, otlp = sys.argv[1], sys.argv[2]
    screenshot = sys.argv[3] if len(sys.argv) > 3 else None
    send(otlp, "web", [10 + i for i in range(12)], errors=3, offset=0)
    send(otlp, "db-proxy", [2] * 5, errors=0, offset=1000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url)
        page.wait_for_selector('tr[data-service="web"]', timeout=15_000)
        expect("services listed", page.locator("#services tbody tr").count(), 2)
        expect("web requests", cell(page, "web", "requests"), "12")
        expect("web errors", cell(page, "web", "errors"), "3")
        expect("web error %", cell(page, "web", "error_ratio"), "25.00 %")
        # Durations 10..21 ms: the nearest-rank median is 15 ms, p99 is 21 ms.
        expect("web p50", cell(page, "web", "p50_ms"), "15 ms")
        expect("web p99", cell(page, "web", "p99_ms"), "21 ms")
        expect("db-proxy requests", cell(page, "db-proxy", "requests"), "5")
        expect("db-proxy error %", cell(page, "db-proxy", "error_ratio"), "0.00 %")

        # New data appears without a reload (the page refreshes every 5 s).
        send(otlp, "web", [30] * 8, errors=0, offset=100)
        page.wait_for_function(
            """() => document.querySelector('tr[data-service="web"] td[data-field="requests"]')
                       ?.textContent === "20" """, timeout=15_000)
        expect("web errors after refresh", cell(page, "web", "errors"), "3")

        # Clicking a service lists its recent traces; "errors only" narrows them.
        page.click('tr[data-service="web"]')
        page.wait_for_function("() => document.querySelectorAll('#traces tbody tr').length === 20",
                               timeout=15_000)
        expect("traces panel title", page.inner_text("#traces-service"), "web")
        page.check("#errors-only")
        page.wait_for_function("() => document.querySelectorAll('#traces tbody tr').length === 3",
                               timeout=15_000)
        errors = page.locator('#traces tbody td[data-field="error"]').all_inner_texts()
        expect("error rows", errors, ["error"] * 3)

        # Sorting by a column header reorders the table.
        page.click('th[data-sort="requests"]')
        first = page.locator("#services tbody tr").first.get_attribute("data-service")
        expect("first row after sorting by requests", first, "web")
        if screenshot:
            page.screenshot(path=screenshot, full_page=True)
        browser.close()
    print("services page OK")


if __name__ == "__main__":
    main()
