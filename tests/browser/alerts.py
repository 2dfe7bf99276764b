"""The alerts page and the expression graph in headless Chromium, against a running Lakescope
whose rules CheckoutErrorBurst and CheckoutSlow are firing (tests/alerting.rs drives the burst):
the page shows each rule's state, its firing alert with the labels and summary the API gives,
and its chart link, and the generatorURL of a sent alert opens the graph of its expression.

Usage: alerts.py DASHBOARD_URL GENERATOR_URL SCREENSHOT_DIR
Exits non-zero, saying what differed.
"""

import os
import re
import sys
import urllib.parse

from playwright.sync_api import sync_playwright

from browsing import api, expect, open_page





def main() -> None:
    url, generator, shots = sys.argv[1:4]
    os.makedirs(shots, exist_ok=True)
    rules = [r for g in api(url, "rules")["data"]["groups"] for r in g["rules"]]
    firing = {a["labels"]["alertname"]: a for a in api(url, "alerts")["data"]["alerts"]
              if a["state"] == "firing"}
    for name in ("CheckoutErrorBurst", "CheckoutSlow"):
        if name not in firing:
            sys.exit(f"{name} is not firing in /api/v1/alerts: {firing}")
    with sync_playwright() as p:
        browser, page, errors, shot = open_page(p, shots)

        page.goto(url + "#/alerts")
        rule = 'section.rule[data-rule="CheckoutErrorBurst"]'
        page.wait_for_selector(rule + '[data-state="firing"]', timeout=20_000)
        page.wait_for_selector('section.rule[data-rule="CheckoutSlow"][data-state="firing"]', timeout=20_000)
        expect("recording rule state", page.get_attribute('section.rule[data-rule="service:calls:sum"]', "data-state"),
               "recording")
        count = sum(1 for r in rules if r["type"] == "alerting" and r["state"] == "firing")
        summary = page.inner_text("#alert-summary")
        if not summary.startswith(f"{count} firing"):
            sys.exit(f"summary {summary!r}, the API has {count} firing rules")
        expect("rule state", page.inner_text(rule + " .rule-state"), "firing")
        expr = next(r["query"] for r in rules if r["name"] == "CheckoutErrorBurst")
        expect("expression", page.inner_text(rule + " .rule-expr").strip(), expr.strip())
        row = rule + ' tr.alert-row[data-state="firing"]'
        labels = page.inner_text(row + ' td[data-field="labels"]')
        for pair in ('service="checkout"', 'severity="page"'):
            if pair not in labels:
                sys.exit(f"alert labels on the page {labels!r} lack {pair}")
        # The value moves with every evaluation (each second): the rendered form, not the digits.
        shown = page.inner_text(row + ' td[data-field="summary"]').strip()
        if not re.fullmatch(r"checkout fails \d+(\.\d+)?% of requests", shown):
            sys.exit(f"alert summary on the page {shown!r}; the API had "
                     f"{firing['CheckoutErrorBurst']['annotations']['summary']!r}")
        last = page.inner_text(rule + " .rule-last")
        if not (last.endswith("s ago") or last.endswith("min ago")):
            sys.exit(f"last evaluation shown as {last!r}")
        shot("alerts")

        # The rule's chart link: the ratio of failing requests, over the 0.5 threshold.
        page.click(rule + " a.rule-chart")
        page.wait_for_selector("#graph-series tbody tr", timeout=20_000)
        expect("graph expression", page.input_value("#graph-expr").strip(), expr.strip())
        series = page.inner_text('#graph-series td[data-field="name"]')
        if 'service="checkout"' not in series:
            sys.exit(f"graph series {series!r}")
        latest = float(page.inner_text('#graph-series td[data-field="last"]'))
        if not 0.5 < latest <= 1.0:
            sys.exit(f"latest error ratio on the graph {latest}, expected over 0.5")
        page.wait_for_selector("#graph-chart svg path")
        shot("graph")

        # Alertmanager's link back (Prometheus's /graph?g0.expr=…) opens the same graph.
        page.goto(generator)
        page.wait_for_selector("#graph-series tbody tr", timeout=20_000)
        expect("generator link expression", page.input_value("#graph-expr").strip(), expr.strip())

        # A broken expression says what is wrong, in the API's words.
        page.goto(url + "#/graph?expr=" + urllib.parse.quote("sum(rate(x[5m])"))
        page.wait_for_selector("#graph-error", timeout=20_000)
        message = page.inner_text("#graph-error")
        if "parse error" not in message:
            sys.exit(f"error shown for a broken expression: {message!r}")
        if errors:
            sys.exit(f"page errors: {errors}")
        browser.close()
    print("alerts page OK")


if __name__ == "__main__":
    main()
