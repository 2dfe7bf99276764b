"""Drives the dashboard in headless Chromium (Debian's, through Playwright) the way an engineer
uses it, against a running Lakescope fed with a known fleet over OTLP/HTTP JSON: overview →
service → failing traces → one trace → errors → dependencies → dashboards, checking the numbers
shown against what was sent and against the API.

Usage: dashboard.py DASHBOARD_URL OTLP_HTTP_URL EMPTY_DASHBOARD_URL SCREENSHOT_DIR
Exits non-zero, saying what differed.
"""

import datetime
import json
import os
import sys
import time
import urllib.parse
import urllib.request

from playwright.sync_api import sync_playwright

from browsing import api, expect, open_page

REQUESTS = 12
FAILING = 3


def post(otlp: str, body: dict) -> None:
    req = urllib.request.Request(otlp + "/v1/traces", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as res:
        assert res.status == 200, res.status


def resource_spans(service: str, spans: list) -> dict:
    return {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"spans": spans}]}


def span(trace: int, sid: int, parent, name: str, kind: int, start: int, dur_ms: float, attrs=None,
         error=None, exception=None) -> dict:
    s = {"traceId": format(trace, "032x"), "spanId": format(sid, "016x"), "name": name, "kind": kind,
         "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + int(dur_ms * 1e6)),
         "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                        for k, v in (attrs or {}).items()]}
    if parent:
        s["parentSpanId"] = format(parent, "016x")
    if error:
        s["status"] = {"code": 2, "message": error}
    if exception:
        s["events"] = [{"name": "exception", "timeUnixNano": str(start),
                        "attributes": [{"key": "exception.type", "value": {"stringValue": exception[0]}},
                                       {"key": "exception.message", "value": {"stringValue": exception[1]}}]}]
    return s


def send_fleet(otlp: str, offset: int, count: int) -> None:
    """web (SERVER GET /checkout) → api (SERVER Reserve) → orders-db; the first FAILING fail in api."""
    now = time.time_ns() - 30 * 10**9
    web, api = [], []
    for i in range(offset, offset + count):
        t = 1_000 + i
        start = now + i * 10**7
        fail = i < FAILING
        web.append(span(t, t * 10 + 1, None, "GET /checkout", 2, start, 10 + i,
                        {"http.request.method": "GET", "http.route": "/checkout"}, "upstream failed" if fail else None))
        web.append(span(t, t * 10 + 2, t * 10 + 1, "api/Reserve", 3, start + 10**6, 5,
                        {"rpc.system": "grpc"}, "upstream failed" if fail else None))
        api.append(span(t, t * 10 + 3, t * 10 + 2, "Reserve", 2, start + 2 * 10**6, 4, {"rpc.system": "grpc"},
                        f"item {i} gone" if fail else None, ("InventoryError", f"item {i} gone") if fail else None))
        api.append(span(t, t * 10 + 4, t * 10 + 3, "SELECT stock", 3, start + 3 * 10**6, 1,
                        {"db.system.name": "postgresql", "server.address": "orders-db"}))
    post(otlp, {"resourceSpans": [resource_spans("web", web), resource_spans("api", api)]})


def send_logs(otlp: str) -> None:
    """For each failing request of the fleet, an ERROR log in its api span; and 20 INFO logs."""
    now = time.time_ns() - 30 * 10**9
    records = []
    for i in range(FAILING):
        t = 1_000 + i
        records.append({"timeUnixNano": str(now + i * 10**7), "severityNumber": 17, "severityText": "ERROR",
                        "body": {"stringValue": f"reserve failed: item {i} gone"},
                        "traceId": format(t, "032x"), "spanId": format(t * 10 + 3, "016x")})
    for i in range(20):
        records.append({"timeUnixNano": str(now + i * 10**6), "severityNumber": 9, "severityText": "INFO",
                        "body": {"stringValue": f"reserved item {i}"}})
    body = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
                              "scopeLogs": [{"logRecords": records}]}]}
    req = urllib.request.Request(otlp + "/v1/logs", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as res:
        assert res.status == 200, res.status


def send_metrics(otlp: str) -> None:
    """A counter of 5 + 7 orders in two regions, sent as OTLP/JSON."""
    now = time.time_ns()
    def point(region: str, value: int) -> dict:
        return {"timeUnixNano": str(now - 10**9), "startTimeUnixNano": str(now - 60 * 10**9),
                "asInt": str(value), "attributes": [{"key": "region", "value": {"stringValue": region}}]}
    body = {"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
        "scopeMetrics": [{"metrics": [{"name": "orders.placed", "unit": "{order}", "sum": {
            "aggregationTemporality": 2, "isMonotonic": True,
            "dataPoints": [point("eu", 5), point("us", 7)]}}]}]}]}
    req = urllib.request.Request(otlp + "/v1/metrics", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as res:
        assert res.status == 200, res.status


def send_big_trace(otlp: str, n: int) -> str:
    """One trace of n spans: a root with 100 children, each with (n-101)/100 children."""
    trace = 0xB16
    start = time.time_ns() - 20 * 10**9
    spans = [span(trace, 1, None, "batch job", 2, start, 5000)]
    sid = 2
    for c in range(100):
        parent = sid
        spans.append(span(trace, sid, 1, f"chunk {c}", 1, start + c * 10**7, 40))
        sid += 1
        for _ in range((n - 101) // 100):
            spans.append(span(trace, sid, parent, f"item {sid}", 1, start + c * 10**7 + sid, 0.5))
            sid += 1
    post(otlp, {"resourceSpans": [resource_spans("batch", spans)]})
    return format(trace, "032x")




def cell(page, row: str, field: str) -> str:
    return page.inner_text(f'{row} td[data-field="{field}"]').strip()


def main() -> None:
    url, otlp, empty_url, shots = sys.argv[1:5]
    os.makedirs(shots, exist_ok=True)
    send_fleet(otlp, 0, REQUESTS)
    send_logs(otlp)
    send_metrics(otlp)
    big_trace = send_big_trace(otlp, 10_101)
    with sync_playwright() as p:
        browser, page, errors, shot = open_page(p, shots)

        # Overview: numbers as sent, and as the API says.
        page.goto(url + "#/")
        page.wait_for_selector('#overview-services tr[data-service="web"]', timeout=20_000)
        page.wait_for_selector("#overview-graph svg", timeout=20_000)
        web_row = '#overview-services tr[data-service="web"]'
        expect("web requests", cell(page, web_row, "requests"), str(REQUESTS))
        expect("web error %", cell(page, web_row, "error_ratio"), "25.00 %")
        expect("api requests", cell(page, '#overview-services tr[data-service="api"]', "requests"), str(REQUESTS))
        services = {s["name"]: s for s in api(url, "services?start=now-15m")["services"]}
        # Durations 10..21 ms: nearest-rank p99 is 21 ms, shown rounded like the API's value.
        expect("web p99", cell(page, web_row, "p99_ms"), f"{services['web']['p99_ms']:.0f} ms")
        expect("web p99 value", round(services["web"]["p99_ms"]), 21)
        top = page.inner_text("#top-errors")
        if "InventoryError: item <n> gone" not in top:
            sys.exit(f"top errors do not list the inventory error: {top}")
        nodes = page.eval_on_selector_all("#overview-graph g.node", "ns => ns.map(n => n.dataset.id).sort()")
        expect("overview graph nodes", nodes, ["api", "batch", "orders-db", "web"])
        shot("overview")

        # New data appears without a reload.
        send_fleet(otlp, REQUESTS, 4)
        page.wait_for_function(
            """() => document.querySelector('#overview-services tr[data-service="web"] td[data-field="requests"]')
                     ?.textContent === "16" """, timeout=15_000)

        # The time range is in the URL and shared by the pages.
        page.select_option("#range", "1h")
        page.wait_for_function("() => location.hash.includes('range=1h')")

        # Overview → service. Its charts ask for a series on 15-second boundaries (what the
        # server answers from its rollups), and hold every request of the range.
        series_urls = []
        page.on("request", lambda r: series_urls.append(r.url) if "/series?" in r.url else None)
        page.click(f'{web_row} a')
        page.wait_for_selector("#operations-table", timeout=20_000)
        if not series_urls:
            sys.exit("the service page asked for no series")
        params = urllib.parse.parse_qs(urllib.parse.urlparse(series_urls[-1]).query)
        start = datetime.datetime.fromisoformat(params["start"][0].replace("Z", "+00:00"))
        step = int(params["step"][0].rstrip("s"))
        if start.timestamp() % 15 or step % 15:
            sys.exit(f"series not on 15-second boundaries: {series_urls[-1]}")
        points = api(url, series_urls[-1].split("/api/v1/", 1)[1])["points"]
        expect("requests in the service's series", sum(p["requests"] for p in points), 16)
        if "range=1h" not in page.url:
            sys.exit(f"the service page lost the time range: {page.url}")
        expect("operation requests", cell(page, '#operations-table tr[data-operation="GET /checkout"]', "requests"), "16")
        expect("operation errors", cell(page, '#operations-table tr[data-operation="GET /checkout"]', "errors"), str(FAILING))
        if page.locator("#chart-latency path").count() < 3:
            sys.exit("the latency chart has no p50/p95/p99 lines")
        if page.locator("#histogram rect").count() == 0:
            sys.exit("no latency histogram")
        shot("service")

        # Service → failing traces → one trace.
        page.click("#failing-traces")
        page.wait_for_function("() => document.querySelectorAll('#traces tbody tr').length === 3", timeout=20_000)
        page.click("#traces tbody tr a")
        page.wait_for_selector("#waterfall .span-row", timeout=20_000)
        expect("spans in the trace", page.inner_text("#trace-span-count"), "4 spans")
        expect("errors in the trace", page.inner_text("#trace-errors"), "3 errors")
        page.click("#waterfall .span-row:has-text('api Reserve')")
        details = page.inner_text("#span-details")
        if "InventoryError" not in details:
            sys.exit(f"span details do not show the exception: {details}")
        page.wait_for_selector("#trace-logs .log-entry", timeout=20_000)
        expect("logs of the trace", page.locator("#trace-logs .log-entry").count(), 1)
        if "reserve failed" not in page.inner_text("#trace-logs"):
            sys.exit("the trace's log record is not shown")
        shot("trace")

        # Logs: search narrows the list and the histogram; a log links to its trace.
        page.goto(url + "#/logs?range=1h")
        page.wait_for_selector("#log-list .log-entry", timeout=20_000)
        expect("all log records", page.locator("#log-list .log-entry").count(), 20 + FAILING)
        page.select_option("#logs-min_severity", "error")
        page.click("#log-search button[type=submit]")
        page.wait_for_function(f"() => document.querySelectorAll('#log-list .log-entry').length === {FAILING}", timeout=20_000)
        if not page.inner_text("#log-histogram figcaption").startswith(f"{FAILING} log records"):
            sys.exit("the histogram does not count the filtered records")
        page.fill("#logs-q", "ITEM 1 GONE")
        page.click("#log-search button[type=submit]")
        page.wait_for_function("() => document.querySelectorAll('#log-list .log-entry').length === 1", timeout=20_000)
        page.click("#log-list .log-entry .log-line")
        if "span_id" not in page.inner_text("#log-list .log-details"):
            sys.exit("an expanded log does not show its details")
        page.click("#log-list .log-entry a.trace-link")
        page.wait_for_selector("#waterfall .span-row", timeout=20_000)
        shot("logs")

        # Errors: grouped, with origin.
        page.goto(url + "#/errors?range=1h")
        page.wait_for_selector("#error-groups", timeout=20_000)
        groups = {g["service"] + "|" + g["fingerprint"]: g for g in api(url, "errors?start=now-1h")["groups"]}
        inventory = groups["api|InventoryError: item <n> gone"]
        row = f'#error-groups tr[data-group="{inventory["id"]}"]'
        expect("inventory count", cell(page, row, "count"), str(FAILING))
        expect("inventory originated", cell(page, row, "originated"), str(FAILING))
        upstream = groups["web|upstream failed"]
        expect("web propagated", cell(page, f'#error-groups tr[data-group="{upstream["id"]}"]', "propagated"), str(2 * FAILING))
        shot("errors")

        # Dependencies: exact edges; clicking an edge explains it.
        page.goto(url + "#/dependencies?range=1h")
        page.wait_for_selector("#edges", timeout=20_000)
        edge = '#edges tr[data-source="web"][data-target="api"]'
        expect("web→api calls", cell(page, edge, "calls"), "16")
        expect("web→api errors", cell(page, edge, "errors"), str(FAILING))
        expect("api→orders-db kind", cell(page, '#edges tr[data-source="api"][data-target="orders-db"]', "target_kind"), "database")
        page.click('path.edge[data-source="web"][data-target="api"]')
        page.wait_for_selector("#edge-details")
        shot("dependencies")

        # A 10,000-span trace: opens, only visible rows are in the DOM, scrolls to the end, collapses.
        page.goto(url + f"#/traces/{big_trace}")
        page.wait_for_selector("#waterfall .span-row", timeout=60_000)
        expect("big trace span count", page.inner_text("#trace-span-count"), "10101 spans")
        rendered = page.locator("#waterfall .span-row").count()
        if rendered > 200:
            sys.exit(f"{rendered} rows in the DOM: the waterfall is not virtualised")
        page.eval_on_selector("#waterfall", "w => w.scrollTop = w.scrollHeight")
        page.wait_for_selector("#waterfall .span-row:has-text('item 10100')", timeout=10_000)
        page.click("#collapse-all")
        page.wait_for_function("() => document.querySelector('#waterfall .spacer').offsetHeight <= 101 * 24")
        shot("big-trace")

        # Metrics: listed with their dimensions, charted per group.
        page.goto(url + "#/metrics?range=1h")
        page.wait_for_selector('#metrics tr[data-metric="orders.placed"]', timeout=20_000)
        expect("metric type", cell(page, '#metrics tr[data-metric="orders.placed"]', "type"), "counter")
        expect("metric dimensions", cell(page, '#metrics tr[data-metric="orders.placed"]', "attribute_keys"), "region")
        page.click('#metrics tr[data-metric="orders.placed"] a')
        page.wait_for_selector("#metric-line svg", timeout=20_000)
        page.select_option("#metric-agg", "increase")
        page.select_option("#metric-group", "region")
        page.click("#metric-query button[type=submit]")
        page.wait_for_function("() => document.querySelector('#metric-line .legend')?.textContent.includes('us')", timeout=20_000)
        legend = page.inner_text("#metric-line .legend")
        if "eu" not in legend or "us" not in legend:
            sys.exit(f"the chart is not grouped by region: {legend}")
        shown = page.inner_text("#metric-chart")
        if "null" in shown or "[object" in shown:
            sys.exit(f"the metric chart shows a placeholder as text: {shown!r}")
        shot("metrics")

        # Dashboards as data.
        page.goto(url + "#/dashboards")
        page.wait_for_selector('#dashboards tr[data-id="service-health"]', timeout=20_000)
        page.click('#dashboards tr[data-id="service-health"] a')
        page.wait_for_selector('section[data-kind="stat"] .stat', timeout=20_000)
        spans = 16 * 4 + 10_101
        expect("spans stat", page.inner_text('section[data-kind="stat"] .stat'), str(spans))
        shot("dashboard")

        # A narrow window: no sideways scrolling of the page itself.
        page.set_viewport_size({"width": 390, "height": 800})
        page.goto(url + "#/")
        page.wait_for_selector('#overview-services tr[data-service="web"]', timeout=20_000)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        if width > 400:
            sys.exit(f"the overview is {width}px wide in a 390px window")
        shot("narrow")

        # A server with no data says how to send some.
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(empty_url + "#/")
        page.wait_for_selector("#overview-services .empty", timeout=20_000)
        if "OTLP" not in page.inner_text("#overview-services"):
            sys.exit("the empty state does not say how to send data")
        shot("empty")
        if errors:
            sys.exit(f"JavaScript errors: {errors}")
        browser.close()
    print("dashboard OK")


if __name__ == "__main__":
    main()
