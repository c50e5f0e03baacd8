"""`llem report`: the HTML page of real campaign stores opened in a real headless Chromium
(selenium + chromedriver). Every page: no JavaScript error in the browser's log, the plots
counted (plotly divs holding data, drawn, screenshots not blank), a full-page screenshot
kept under the test's tmp folder, axes of non-negative quantities never below zero, and
every mean ± CI in one number format. Then what each campaign's page must show: the
parameters that vary between its points (whatever section swept them), one plot per
parameter, a latency plot without energy, error bars only from 3 cycles, and for a server's
rate levels the lines against the achieved rate and the energy-latency frontier.

Robust on a busy 2-core machine: waits are generous and nothing is timed."""

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
    ARRIVAL_RATES,
    ARRIVALS,
    ARRIVALS_GRID,
    CAMPAIGN,
    CONFIGS,
    SATURATED_LEVEL,
    SERVER,
    SERVER_RATES,
    SERVER_TOKENS,
    read_runs,
    run_campaign,
    run_grid,
    server_levels,
    server_store,
    with_gpu_readings,
)
from tests.support.cli import run_cli

pytestmark = pytest.mark.slow

CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
WAIT_S = 300  # a busy 2-core machine draws a page of plots slowly: wait, never time it
GPU_PLOTS = ["pareto", "latency_vs_energy", "latency_vs_throughput", "by_batch_size",
             "by_streaming", "power_timeline"]
CPU_PLOTS = ["latency_vs_throughput", "by_batch_size", "by_streaming"]
SERVER_PLOTS = ["rate_levels", "energy_latency_pareto", "by_max_new_tokens"]
MEAN_CI = re.compile(r"^(n/a|-?\d+(\.\d+)?( ± \d+(\.\d+)?)?|\(-?\d+\.\d+ ± \d+\.\d+\)e[+-]\d+)$")


def find_chromium() -> tuple[str, str] | None:
    """(browser, chromedriver) from CHROME_BIN / CHROMEDRIVER or the PATH, or None."""
    browser = os.environ.get("CHROME_BIN") or next(
        (p for p in map(shutil.which, CHROMIUMS) if p), None)
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def ensure_chromium() -> tuple[str, str]:
    """A Chromium and its driver; on Debian as root, installed with apt when missing (CI).
    Skipped, saying why, only where none can be found or installed."""
    found = find_chromium()
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("no Chromium found (chromium/google-chrome and chromedriver on PATH, or "
                    "CHROME_BIN and CHROMEDRIVER), and apt-get cannot install one here")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900,
                           check=False)
        if r.returncode != 0:
            pytest.skip(f"no Chromium found and `{' '.join(cmd)}` failed: {r.stderr[-300:]}")
    found = find_chromium()
    if not found:
        pytest.skip("no Chromium found after installing Debian's chromium")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, chromedriver = ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
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


def write_report(store: Path, campaign: str, out: Path, *extra: str) -> str:
    r = run_cli("report", campaign, "--store", str(store), "-o", str(out), *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def not_blank(png: Path, min_colours: int = 8) -> bool:
    """A rendered plot: many colours and real variance, unlike a blank or flat image."""
    img = Image.open(png).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20) or []
    return len(colours) >= min_colours and max(ImageStat.Stat(img).var) > 50.0


# Per plot: its name, how many traces hold points, the points, and every axis (type, range).
PLOTS_JS = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (p) {
  var axes = Object.keys(p._fullLayout).filter(function (k) { return /^[xy]axis\\d*$/.test(k); })
    .map(function (k) { var a = p._fullLayout[k];
      return {name: k, type: a.type, range: a.range, title: (a.title || {}).text || ''}; });
  return {id: p.id, title: (p.layout.title || {}).text || '', axes: axes,
          traces: p.data.map(function (t) {
            return {name: t.name || '', mode: t.mode || '', x: Array.from(t.x || []),
                    y: Array.from(t.y || []), text: t.text ? Array.from(t.text) : [],
                    xaxis: t.xaxis || 'x', yaxis: t.yaxis || 'y',
                    symbol: (t.marker || {}).symbol || '',
                    error_y: !!(t.error_y && t.error_y.array && t.error_y.visible !== false)};
          }),
          drawn: p.querySelectorAll('.scatterlayer .point, .scatterlayer .js-line').length};
});
"""


def check_page(browser: Any, page: Path, shots: Path) -> list[dict[str, Any]]:
    """Load `page`, wait until every plot is drawn, and check what every report must be:
    no JavaScript error, plots holding data and drawn, screenshots not blank, linear axes
    from zero up, mean ± CI cells in one format. Returns the plots (PLOTS_JS)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(page.as_uri())
    WebDriverWait(browser, WAIT_S, poll_frequency=1).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.querySelectorAll("
        "'.js-plotly-plot')).every(p => p.data && p.querySelector('.main-svg'))"))
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
    plots = browser.execute_script(PLOTS_JS)
    for p in plots:
        assert p["traces"] and p["drawn"] > 0, p["id"]
        assert any(t["x"] for t in p["traces"]), p["id"]
        for a in p["axes"]:  # every plotted quantity is >= 0: no linear axis below zero
            if a["type"] == "linear":
                assert a["range"][0] >= 0, (p["id"], a)
    shots.mkdir(parents=True, exist_ok=True)
    for p in plots:
        el = browser.find_element(By.ID, p["id"])
        browser.execute_script("arguments[0].scrollIntoView();", el)
        shot = shots / f"{p['id']}.png"
        assert el.screenshot(str(shot)) and not_blank(shot), p["id"]
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1400, min(int(height) + 50, 16000))
    full = shots / "page.png"
    assert browser.save_screenshot(str(full)) and not_blank(full)
    browser.set_window_size(1400, 1000)
    for cell in browser.find_elements(By.CSS_SELECTOR, "#results td.num"):
        text = cell.text.strip()
        assert text == "" or MEAN_CI.match(text) or re.match(r"^\d+( of \d+)?$|^no$", text), \
            text
        if " ± " in text and not text.startswith("("):  # one format: same decimal places
            a, b = text.split(" ± ")
            assert len(a.partition(".")[2]) == len(b.partition(".")[2]), text
    return plots


def plot(plots: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(p for p in plots if p["id"] == f"fig-{name}")


def ids(plots: list[dict[str, Any]]) -> list[str]:
    return [p["id"].removeprefix("fig-") for p in plots]


def table(browser: Any) -> list[dict[str, str]]:
    from selenium.webdriver.common.by import By

    heads = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#results th")]
    return [dict(zip(heads, [td.text for td in tr.find_elements(By.TAG_NAME, "td")],
                     strict=True))
            for tr in browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")]


def test_report_in_headless_chromium(browser: Any, stores: dict[str, Path],
                                     tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    page = tmp_path / "report.html"
    out = write_report(stores["gpu"], CAMPAIGN, page)
    assert f"{CONFIGS} configurations, {len(GPU_PLOTS)} plots" in out
    html = page.read_text()
    # self-contained: no script, style or image loaded from elsewhere (plotly's JS is inline)
    assert not re.search(r"<script[^>]*\bsrc\s*=", html)
    outside_scripts = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", outside_scripts)
    assert html.count("<script") >= 3 and len(html) > 1_000_000

    plots = check_page(browser, page, tmp_path / "shots")
    assert ids(plots) == GPU_PLOTS
    # the Pareto plot: one labelled point per configuration, then the frontier line
    pareto = plot(plots, "pareto")["traces"]
    assert len(pareto[0]["x"]) == CONFIGS and "text" in pareto[0]["mode"]
    assert sorted(pareto[0]["text"]) == sorted(
        f"batch_size={b}, streaming={s}" for b in (1, 4) for s in ("false", "true"))
    assert pareto[1]["name"] == "Pareto frontier" and 1 <= len(pareto[1]["x"]) <= CONFIGS
    # one plot per parameter: x the parameter, the other one as colour; 3 cycles: CI bars
    by_batch = plot(plots, "by_batch_size")
    assert {t["name"] for t in by_batch["traces"]} == {"streaming=false", "streaming=true"}
    assert all(sorted(t["x"]) == [1, 4] for t in by_batch["traces"])
    assert all(t["error_y"] for t in by_batch["traces"])
    assert "colour: streaming" in by_batch["title"]

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


def test_report_without_energy_shows_latency(browser: Any, stores: dict[str, Path],
                                             tmp_path: Path) -> None:
    page = tmp_path / "measured.html"
    out = write_report(stores["measured"], CAMPAIGN, page)
    assert f"{CONFIGS} configurations, {len(CPU_PLOTS)} plots" in out
    html = page.read_text()
    assert "Energy was not measured in this campaign" in html and "no RAPL" in html
    assert "No power samples" in html
    plots = check_page(browser, page, tmp_path / "shots")
    assert ids(plots) == CPU_PLOTS
    latency = plot(plots, "latency_vs_throughput")
    assert [t["name"] for t in latency["traces"]] == \
        ["latency p50 (s)", "latency p99 (s)", "TTFT p50 (s)"]
    assert [len(t["x"]) for t in latency["traces"]] == [CONFIGS, CONFIGS, CONFIGS // 2]
    assert len(table(browser)) == CONFIGS


def test_power_timeline_of_a_chosen_job(stores: dict[str, Path], tmp_path: Path) -> None:
    runs = read_runs(stores["gpu"])
    pick = sorted(r["job_id"] for r in runs if r["batch_size"] == 4 and r["streaming"])[0]
    page = tmp_path / "r.html"
    write_report(stores["gpu"], CAMPAIGN, page, "--job", f"{pick[:8]}:2")
    html = page.read_text()
    assert "Power timeline: batch_size=4, streaming=true (cycle 2)" in html


@pytest.fixture(scope="module")
def arrivals(llem_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_grid(tmp_path_factory.mktemp("arrivals"), ARRIVALS_GRID)


def test_rates_swept_outside_the_grid_are_parameters(browser: Any, arrivals: Path,
                                                     tmp_path: Path) -> None:
    """measurement.request_rate is swept in `measurement:`, not `grid:`: still the
    campaign's parameter, one configuration per rate, one plot against it."""
    page = tmp_path / "arrivals.html"
    out = write_report(arrivals, ARRIVALS, page)
    assert "3 configurations, 2 plots" in out
    html = page.read_text()
    assert re.search(r"<dt>swept parameters</dt><dd>request_rate</dd>", html)
    plots = check_page(browser, page, tmp_path / "shots")
    labels = {s for p in plots for t in p["traces"] for s in [t["name"], *t["text"]]}
    assert "request_rate=16" in labels
    assert not [s for s in labels if "engine" in s or "None" in s or "null" in s], labels
    assert ids(plots) == ["latency_vs_throughput", "by_request_rate"]
    by_rate = plot(plots, "by_request_rate")
    assert [t["x"] for t in by_rate["traces"]] == [list(ARRIVAL_RATES)] * len(by_rate["traces"])
    assert any(a["type"] == "log" for a in by_rate["axes"] if a["name"].startswith("x"))
    assert [t["name"] for t in by_rate["traces"]] == ["all"] * len(by_rate["traces"])
    rows = table(browser)
    assert [float(r["request_rate"]) for r in rows] == list(ARRIVAL_RATES)
    assert all(r["cycles ok"] == "3" for r in rows)
    assert all(r["achieved rate (requests/s)"] != "n/a" for r in rows)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return server_store(tmp_path_factory.mktemp("server") / "store")


def test_server_rate_levels_against_the_achieved_rate(browser: Any, server: Path,
                                                      tmp_path: Path) -> None:
    page = tmp_path / "server.html"
    out = write_report(server, SERVER, page)
    levels = server_levels(server)
    assert f"{len(levels)} configurations, {len(SERVER_PLOTS)} plots" in out
    plots = check_page(browser, page, tmp_path / "shots")
    assert ids(plots) == SERVER_PLOTS
    rates = plot(plots, "rate_levels")
    metrics = ["energy_per_token_j", "goodput_requests_per_s", "slo_attainment", "ttft_p99_s",
               "itl_p99_s"]
    axes = sorted({t["yaxis"] for t in rates["traces"]}, key=lambda a: int(a[1:] or 1))
    assert len(axes) == len(metrics)
    for axis, metric in zip(axes, metrics, strict=True):
        traces = [t for t in rates["traces"] if t["yaxis"] == axis]
        lines = [t for t in traces if "lines" in t["mode"]]
        crosses = [t for t in traces if t["symbol"] == "x"]
        # one line per configuration, through its normal levels in order of achieved rate
        assert sorted(t["name"] for t in lines) == [f"max_new_tokens={n}" for n in
                                                   SERVER_TOKENS]
        for t in lines:
            tokens = int(t["name"].split("=")[1])
            exp = sorted((v["arrival_rate_achieved"], v[metric]) for (n, _), v in
                         levels.items() if n == tokens and not v["saturated"])
            assert [(round(x, 9), round(y, 9)) for x, y in zip(t["x"], t["y"], strict=True)] \
                == [(round(x, 9), round(y, 9)) for x, y in exp]
        # the over-saturated level: a cross of its own, on no line
        sat = levels[SATURATED_LEVEL]
        assert len(crosses) == 1 and crosses[0]["mode"] == "markers"
        assert crosses[0]["x"] == pytest.approx([sat["arrival_rate_achieved"]])
        assert crosses[0]["y"] == pytest.approx([sat[metric]])
    # the energy-latency Pareto: J/token vs p99 TTFT and vs p99 ITL, frontier of normal levels
    front_traces = [t for t in plot(plots, "energy_latency_pareto")["traces"]
                    if t["name"] == "Pareto frontier"]
    assert len(front_traces) == 2
    for t, lat in zip(front_traces, ["ttft_p99_s", "itl_p99_s"], strict=True):
        normal = [(v[lat], v["energy_per_token_j"]) for v in levels.values()
                  if not v["saturated"]]
        exp = sorted(p for p in normal if not any(
            q[0] <= p[0] and q[1] <= p[1] and q != p for q in normal))
        got = sorted(zip(t["x"], t["y"], strict=True))
        assert [round(v, 9) for p in got for v in p] == [round(v, 9) for p in exp for v in p]
        assert "text" in t["mode"] and all("server.rate=" in s for s in t["text"])
    rows = table(browser)
    assert len(rows) == len(levels) == len(SERVER_TOKENS) * len(SERVER_RATES)
    sat_rows = [r for r in rows if r["saturated"] != "no"]
    assert [(int(r["max_new_tokens"]), float(r["server.rate"]), r["saturated"])
            for r in sat_rows] == [(*SATURATED_LEVEL, "3 of 3")]
    assert "goodput (requests/s)" in rows[0] and "SLO attainment (share)" in rows[0]
