"""The web dashboard in a real browser (Debian's headless Chromium, driven by its
chromedriver): a user logs in with a Kubernetes token, sees the rollouts, watches a rollout
judged live (the judge's evidence charted, the step moving, no reload), and promotes it
with a click the controller applies; a user without the verbs sees no button.

The controller runs as in production (deploy/'s RBAC, HTTPS with its self-signed
certificate, which the browser is told to accept). Screenshots for docs/dashboard.md are
taken only when ROLLOUTS_DASHBOARD_SCREENSHOTS names a directory.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from rollouts.kube.client import Kube
from testbed.cluster import TestBed
from tests.e2e.judgekit import at_step, service_account_token
from tests.e2e.kit import ControllerProcess, canary_weight, eventually, get_rollout
from tests.e2e.test_analysis import SIM, analysis_step, judge_template, release, simulator
from tests.e2e.test_http_api import serve

__all__ = ["simulator"]  # the fixture, re-exported for pytest

SHOTS = os.environ.get("ROLLOUTS_DASHBOARD_SCREENSHOTS", "")


def _binary(*names: str) -> str:
    for n in names:
        found = shutil.which(n) or (f"/usr/bin/{n}" if Path(f"/usr/bin/{n}").exists() else None)
        if found:
            return found
    pytest.fail(f"{names[0]} is not installed: run `bash testbed/setup.d/50-chromium.sh` (make setup does)")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    os.environ["SE_OFFLINE"] = "true"  # never let selenium look for a driver elsewhere
    opts = webdriver.ChromeOptions()
    opts.binary_location = _binary("chromium", "chromium-browser")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1100", "--disable-extensions", "--no-first-run"):
        opts.add_argument(a)
    opts.accept_insecure_certs = True  # the controller's self-signed certificate
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(_binary("chromedriver")), options=opts)
    try:
        yield d
    finally:
        d.quit()


async def until(d: WebDriver, cond: Callable[[WebDriver], Any], timeout: float, what: str) -> Any:
    """Waits in a thread (selenium blocks) for ``cond`` to be truthy; fails naming ``what``."""
    def check(drv: WebDriver) -> Any:
        try:
            return cond(drv)
        except (StaleElementReferenceException, WebDriverException):
            return None  # the page re-rendered under us: ask again
    try:
        return await asyncio.to_thread(WebDriverWait(d, timeout, poll_frequency=0.3).until, check)
    except Exception as e:
        logs = [x["message"] for x in d.get_log("browser")][-8:]
        raise AssertionError(f"timed out waiting for {what}; page text: "
                             f"{d.find_element(By.TAG_NAME, 'body').text[:1500]!r}; console: {logs}") from e


def text(d: WebDriver, css: str) -> str:
    els = d.find_elements(By.CSS_SELECTOR, css)
    return els[0].text if els else ""


def click(d: WebDriver, css: str, label: str) -> bool:
    """Clicks the element labelled ``label``; False (ask again) when the page re-rendered
    it between finding and clicking."""
    for el in d.find_elements(By.CSS_SELECTOR, css):
        if el.text == label:
            el.click()
            return True
    return False


def shot(d: WebDriver, name: str) -> None:
    """A full-page screenshot, only when asked for (docs/dashboard.md)."""
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    size = d.get_window_size()
    h = d.execute_script("return document.documentElement.scrollHeight")
    d.set_window_size(1400, max(900, min(int(h) + 40, 4000)))
    d.save_screenshot(str(Path(SHOTS) / f"dashboard-{name}.png"))
    d.set_window_size(size["width"], size["height"])


async def login(d: WebDriver, base: str, token: str) -> None:
    await asyncio.to_thread(d.get, f"{base}/dashboard/")
    d.execute_script("sessionStorage.clear()")
    await asyncio.to_thread(d.get, f"{base}/dashboard/#/")
    field = await until(d, lambda x: x.find_element(By.ID, "token"), 20, "the login form")
    field.send_keys(token)
    d.find_element(By.ID, "login").click()


async def test_login_list_live_judged_rollout_promote_click_and_a_viewer_without_buttons(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: object, browser: WebDriver,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, prom, d = namespace, testbed.prometheus_url, browser
    served = await serve(start_controller)
    judge = await service_account_token(rkube, ns, "judge", ["get", "list", "promote"])
    viewer = await service_account_token(rkube, ns, "viewer", ["get", "list"])

    # a token the cluster does not accept: refused on the login page, nothing shown
    await login(d, served.base, "not-a-token")
    await until(d, lambda x: "not accepted" in text(x, "#login-error"), 20, "the login refusal")
    assert d.execute_script("return sessionStorage.getItem('rollouts-token')") is None

    steps = [{"setWeight": 20}, analysis_step("canary-judge", prom), {"pause": {}},
             {"setWeight": 50}, {"pause": {}}]
    await release(rkube, ns, steps, [judge_template(interval="2s", count=8)], prom,
                  canary={SIM + "error-rate": "0.01"})

    # log in; the list shows the rollout with its phase and step
    await login(d, served.base, judge)
    await until(d, lambda x: text(x, "#whoami") == f"system:serviceaccount:{ns}:judge", 20, "logged in")
    row = f'#rollout-list tr[data-ns="{ns}"][data-name="demo"]'
    await until(d, lambda x: x.find_elements(By.CSS_SELECTOR, row), 30, "the rollout in the list")
    shot(d, "list")

    # the rollout page: while the judge measures, its looks grow on the chart without a reload
    d.find_element(By.CSS_SELECTOR, f"{row} a").click()
    d.execute_script("window.__sameDocument = 42")
    looks = "#analysisruns .judge-charts"
    first = int(await until(d, lambda x: int(x.find_element(By.CSS_SELECTOR, looks)
                                             .get_attribute("data-looks") or 0) >= 2
                            and x.find_element(By.CSS_SELECTOR, looks).get_attribute("data-looks"),
                            60, "judge evidence charted"))
    await until(d, lambda x: int(x.find_element(By.CSS_SELECTOR, looks).get_attribute("data-looks")) > first,
                30, "more judge looks charted")
    # the e-value chart has its threshold line and a line per test; the interval is a band
    svg = d.find_element(By.CSS_SELECTOR, f"{looks} svg").get_attribute("outerHTML")
    assert 'class="hline"' in svg and 'class="series"' in svg, svg[:400]
    assert d.find_elements(By.CSS_SELECTOR, f"{looks} .band")
    kinds = {e.get_attribute("data-role") for e in d.find_elements(By.CSS_SELECTOR, "#replicasets .rs")}
    assert {"canary", "stable"} <= kinds, kinds
    assert d.find_elements(By.CSS_SELECTOR, '#replicasets .rs[data-role="canary"] tr.pod')

    # the analysis passes and the rollout stops at the pause: the page follows by itself
    await until(d, lambda x: text(x, "#step") == "2/5" and "Paused" in text(x, "#phase"), 90,
                "the page at the pause after the analysis")
    await until(d, lambda x: "Successful" in text(x, "#analysisruns .run h3"), 20, "run Successful")
    assert d.execute_script("return window.__sameDocument") == 42  # never reloaded
    # the charted history ends at the verdict the controller stored with its last measurement
    async with httpx.AsyncClient(verify=served.verify) as c:
        tree = (await c.get(f"{served.base}/api/v1/namespaces/{ns}/rollouts/demo/tree",
                            headers={"Authorization": f"Bearer {judge}"})).json()
    (metric,) = tree["analysisRuns"][0]["metrics"]
    stored = {m["name"]: m for m in metric["judge"]["evidence"]["metrics"]}
    charted = metric["judge"]["history"]["points"][-1]["tests"]
    assert set(charted) == set(stored) and stored, (charted, stored)
    for name, m in stored.items():
        assert charted[name]["eValue"] == pytest.approx(m["e_value"]), name
        assert [charted[name]["low"], charted[name]["high"]] == pytest.approx(m["interval"]), name
    # buttons: exactly the verbs RBAC grants (promote, and promote-full by the same verb)
    buttons = {b.get_attribute("data-action") for b in d.find_elements(By.CSS_SELECTOR, "#actions button")}
    assert buttons == {"promote", "promote-full"}, buttons
    shot(d, "rollout")

    # promote: a first click arms, the second records; the controller applies it
    promote = 'button[data-action="promote"]'
    await until(d, lambda x: click(x, promote, "Promote"), 10, "the promote button clicked")
    await until(d, lambda x: "Confirm" in text(x, promote), 10, "the confirm button")
    await asyncio.sleep(1)
    assert (await get_rollout(rkube, ns))["status"]["currentStepIndex"] == 2  # armed only
    await until(d, lambda x: click(x, promote, "Confirm promote"), 10, "the confirm button clicked")
    await until(d, lambda x: "recorded by" in text(x, "#action-result"), 20, "the action accepted")
    ro = await eventually(lambda: at_step(rkube, ns, 4), 60, "the rollout at step 4 after the click")
    assert await canary_weight(rkube, ns) == 50
    last = ro["status"]["lastAction"]
    assert last["action"] == "promote" and last["result"] == "Applied"
    assert last["user"] == f"system:serviceaccount:{ns}:judge"
    await until(d, lambda x: text(x, "#step") == "4/5" and "canary 50%" in text(x, "#weights"), 30,
                "the page at step 4, 50 %")
    await until(d, lambda x: "Applied" in text(x, "#last-action"), 20, "the last action on the page")

    # a user with get and list but none of the verbs: the same page, no button
    await login(d, served.base, viewer)
    await until(d, lambda x: text(x, "#whoami") == f"system:serviceaccount:{ns}:viewer", 20, "viewer in")
    await asyncio.to_thread(d.get, f"{served.base}/dashboard/#/rollouts/{ns}/demo")
    await until(d, lambda x: text(x, "#step") == "4/5", 30, "the rollout page for the viewer")
    await until(d, lambda x: "may not act" in text(x, "#no-actions"), 20, "the no-actions note")
    assert d.find_elements(By.CSS_SELECTOR, "#actions button") == []
    shot(d, "no-buttons")
    # and the API agrees: the hidden action would have been refused, nothing changed
    async with httpx.AsyncClient(verify=served.verify) as c:
        r = await c.post(f"{served.base}/api/v1/namespaces/{ns}/rollouts/demo/promote", json={},
                         headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 403, r.text
    assert (await get_rollout(rkube, ns))["status"]["currentStepIndex"] == 4

    # Swagger UI renders offline: its files come from the controller
    await asyncio.to_thread(d.get, f"{served.base}/docs")
    await until(d, lambda x: "/api/v1/rollouts" in x.find_element(By.TAG_NAME, "body").text, 30,
                "Swagger UI listing the API")
