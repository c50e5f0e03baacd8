"""`llem report`: the HTML page opened in a real headless Chromium (selenium + chromedriver):
no console errors, the plots drawn (screenshots not blank), one table row per
configuration, and the PNGs written by --png."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from tests.support.campaign_store import (
    CAMPAIGN,
    CONFIGS,
    read_runs,
    run_campaign,
    with_gpu_readings,
)
from tests.support.cli import run_cli

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PLOTS = ["pareto", "latency_vs_energy", "j_per_token_by_parameter",
         "tokens_per_s_by_parameter", "power_timeline"]


def ensure_chromium() -> None:
    """Install Debian's chromium + chromium-driver when missing (CI runs as root on Debian);
    skip only where apt cannot be used at all."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("chromium is missing and apt-get cannot install it (not Debian or not root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900,
                           check=False)
        assert r.returncode == 0, f"{' '.join(cmd)} failed: {r.stderr[-2000:]}"
    assert CHROMIUM.exists() and CHROMEDRIVER.exists()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(120)
    # no network at all: the page must open from the file alone, as on a plane
    driver.set_network_conditions(offline=True, latency=0, download_throughput=0,
                                  upload_throughput=0)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def stores(llem_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The campaign as measured here (no energy: no GPU, no RAPL) and with GPU readings."""
    measured = run_campaign(tmp_path_factory.mktemp("report"))
    return {"measured": measured,
            "gpu": with_gpu_readings(measured, tmp_path_factory.mktemp("gpu") / "store")}


def write_report(store: Path, out: Path, *extra: str) -> str:
    r = run_cli("report", CAMPAIGN, "--store", str(store), "-o", str(out), *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def open_page(browser: Any, page: Path) -> list[dict[str, Any]]:
    """Load the page; return its console messages once every plot has drawn."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(page.as_uri())
    WebDriverWait(browser, 60).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.querySelectorAll("
        "'.js-plotly-plot')).every(p => p.querySelector('.main-svg'))"))
    return browser.get_log("browser")


def not_blank(png: Path, min_colours: int = 8) -> bool:
    """A rendered plot: many colours and real variance, unlike a blank or flat image."""
    img = Image.open(png).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20) or []
    return len(colours) >= min_colours and max(ImageStat.Stat(img).var) > 50.0


def test_report_in_headless_chromium(browser: Any, stores: dict[str, Path],
                                     tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    page = tmp_path / "report.html"
    pngs = tmp_path / "png"
    out = write_report(stores["gpu"], page, "--png", str(pngs))
    assert f"{CONFIGS} configurations, {len(PLOTS)} plots" in out
    html = page.read_text()
    # self-contained: no script, style or image loaded from elsewhere (plotly's JS is inline)
    assert not re.search(r"<script[^>]*\bsrc\s*=", html)
    outside_scripts = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", outside_scripts)
    assert html.count("<script") >= 3 and len(html) > 1_000_000

    logs = open_page(browser, page)
    errors = [entry for entry in logs if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
    drawn = browser.execute_script(
        "return Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => "
        "[p.id, p.querySelectorAll('.scatterlayer .point, .scatterlayer .js-line').length])")
    assert [d[0] for d in drawn] == [f"fig-{p}" for p in PLOTS]
    assert all(n > 0 for _, n in drawn), drawn
    # the Pareto plot: one marker per configuration plus the frontier line
    pareto_points = browser.execute_script(
        "return document.querySelectorAll('#fig-pareto .scatterlayer .point').length")
    assert pareto_points == CONFIGS

    rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    assert len(rows) == CONFIGS
    job_ids = {r["job_id"] for r in read_runs(stores["gpu"])}
    assert {r.find_elements(By.TAG_NAME, "td")[-1].text for r in rows} == job_ids

    # sortable: clicking the batch_size header orders the rows by it, twice reverses
    header = browser.find_element(By.XPATH, "//table[@id='results']//th[text()='batch_size']")
    header.click()
    col = [r.find_elements(By.TAG_NAME, "td")[0].text for r in
           browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")]
    assert col == sorted(col, key=int)
    header.click()
    col = [r.find_elements(By.TAG_NAME, "td")[0].text for r in
           browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")]
    assert col == sorted(col, key=int, reverse=True)

    for name in PLOTS:
        shot = tmp_path / f"shot-{name}.png"
        el = browser.find_element(By.ID, f"plot-{name}")
        browser.execute_script("arguments[0].scrollIntoView();", el)
        assert el.screenshot(str(shot)) and not_blank(shot), name
    full = tmp_path / "page.png"
    assert browser.save_screenshot(str(full)) and not_blank(full)

    assert sorted(p.name for p in pngs.iterdir()) == sorted(f"{p}.png" for p in PLOTS)
    for p in pngs.iterdir():
        assert Image.open(p).size == (2200, 1040) and not_blank(p), p


def test_report_without_energy_explains_and_still_loads(browser: Any, stores: dict[str, Path],
                                                       tmp_path: Path) -> None:
    page = tmp_path / "measured.html"
    out = write_report(stores["measured"], page)
    assert f"{CONFIGS} configurations, 1 plots" in out
    html = page.read_text()
    assert "Energy was not measured in this campaign" in html and "no RAPL" in html
    assert "No power samples" in html
    errors = [e for e in open_page(browser, page) if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
    assert browser.execute_script("return document.querySelectorAll('#results tbody tr')"
                                  ".length") == CONFIGS
    plots = browser.execute_script("return Array.from(document.querySelectorAll("
                                   "'.js-plotly-plot')).map(p => p.id)")
    assert plots == ["fig-tokens_per_s_by_parameter"]


def test_power_timeline_of_a_chosen_job(stores: dict[str, Path], tmp_path: Path) -> None:
    runs = read_runs(stores["gpu"])
    pick = sorted(r["job_id"] for r in runs if r["batch_size"] == 4 and r["streaming"])[0]
    page = tmp_path / "r.html"
    write_report(stores["gpu"], page, "--job", f"{pick[:8]}:2")
    html = page.read_text()
    assert "Power timeline: batch_size=4, streaming=True (cycle 2)" in html
