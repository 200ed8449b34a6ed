"""report/index.html in a real browser: headless Chromium, offline, draws every attacked checkpoint with its
details on hover, filters by method, and logs no error. Skipped only where no Chromium and chromedriver can be
found (`make test` installs Debian's `chromium chromium-driver` where apt-get is available)."""
import math
import random
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.test_report import SYNTHETIC_METHODS, report_at, robustness_row, trial_config, trial_rows
from trainables.methods import METHODS
from tuner.report_analysis import config_columns
from tuner.run_dir import read_rows, write_rows

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MIN_ACCURACY = 92.0
WAIT_S = 30


def find_browser() -> tuple[str, str] | None:
    """(browser, chromedriver) paths, Debian's first."""
    browser = next((path for path in ["/usr/bin/chromium", *map(shutil.which, BROWSER_NAMES)]
                    if path and Path(path).is_file()), None)
    driver = next((path for path in ("/usr/bin/chromedriver", shutil.which("chromedriver"))
                   if path and Path(path).is_file()), None)
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def browser():
    found = find_browser()
    if found is None:
        pytest.skip("no Chromium and chromedriver found; `make test` installs Debian's chromium chromium-driver "
                    "where apt-get is available")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    driver.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    yield driver
    driver.quit()


def sweep_rows() -> list[dict]:
    """Three methods x two datasets x three lambdas x two seeds, one stopped trial, one checkpoint with an undefined
    ASR (it cannot be drawn) and configurations below MIN_ACCURACY."""
    rng = random.Random(3)
    rows = []
    for dataset in ("digits", "flower"):
        for index, (method, (column, clean_of, asr_of)) in enumerate(SYNTHETIC_METHODS.items()):
            for decade in (-1, 0, 1):
                for seed in (0, 1):
                    clean, asr = clean_of(decade) - 3 * index + rng.uniform(-1, 1), asr_of(decade) + rng.uniform(-2, 2)
                    rows.append(robustness_row(f"{dataset}_{method}_{decade}_{seed}", trial_config(
                        method, dataset, seed, **{column: 10.0 ** decade}), (clean, asr), (clean - 0.5, asr + 1), rng))
    rows.append(robustness_row("digits_delta_stopped", trial_config("delta", "digits", 0, lambda_feat=0.5),
                               (99.0, 0.5), (99.0, 0.5), rng, stopped=True))
    rows.append(robustness_row("digits_renofeation_broken", trial_config("renofeation", "digits", 5, lambda_feat=1.0),
                               (0.0, math.nan), (0.0, math.nan), rng))
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, list[dict]]:
    run = tmp_path_factory.mktemp("html") / "browser_sweep"
    run.mkdir()
    rows = sweep_rows()
    write_rows(rows, run / "robustness.parquet")
    write_rows(trial_rows(rows), run / "trials.parquet")
    return report_at([run], min_accuracy=MIN_ACCURACY), read_rows(run / "robustness.parquet")


def drawable(rows: list[dict]) -> list[dict]:
    """Every attacked checkpoint with both coordinates of the Pareto plot."""
    return [row for row in rows if not (math.isnan(row["test_asr"]) or math.isnan(row["test_clean_acc"]))]


class Resources(HTMLParser):
    """Every script, and every address a page would load something from."""

    def __init__(self):
        super().__init__()
        self.addresses: list[str] = []
        self.script_sources: list[str] = []
        self.inline_script_characters = 0
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.addresses += [attributes[key] for key in ("src", "href", "data") if attributes.get(key)]
        if tag == "script":
            self._in_script = True
            if attributes.get("src"):
                self.script_sources.append(attributes["src"])

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script:
            self.inline_script_characters += len(data)


def test_index_html_is_self_contained_and_linked_from_the_summary(report):
    out, _ = report
    page = Resources()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    assert page.script_sources == []  # plotly.js is inlined, not fetched
    assert page.inline_script_characters > 1_000_000
    assert [a for a in page.addresses if a.lower().startswith(("http:", "https:", "//"))] == []
    assert "[index.html](index.html)" in (out / "summary.md").read_text()


def open_report(browser, out: Path) -> None:
    browser.get((out / "index.html").as_uri())
    WebDriverWait(browser, WAIT_S).until(lambda driver: driver.execute_script(
        "const gd = document.getElementById('pareto');"
        "return gd && gd._fullData && gd.querySelectorAll('path.point').length > 0;"))


# What each trace of the Pareto plot holds (plotly's gd.data) and how many of its points the page draws (SVG paths
# of the trace's group, which plotly names after the trace's uid in gd._fullData).
TRACES_JS = """
const gd = document.getElementById('pareto');
return gd._fullData.map(full => { const t = gd.data[full.index]; return {meta: t.meta, name: t.name,
    method: t.legendgroup, visible: full.visible, colour: t.marker.color, symbols: t.marker.symbol,
    hover: t.hovertext || [], points: t.x.length,
    rendered: gd.querySelectorAll('.trace' + full.uid + ' path.point').length}; });
"""


def checkpoint_traces(browser) -> list[dict]:
    return [t for t in browser.execute_script(TRACES_JS) if t["meta"] == "checkpoints"]


def test_the_browser_draws_every_attacked_checkpoint_in_its_methods_colour(browser, report):
    out, rows = report
    open_report(browser, out)
    traces = checkpoint_traces(browser)
    expected = drawable(rows)
    assert sum(t["rendered"] for t in traces) == sum(t["points"] for t in traces) == len(expected)
    for method in SYNTHETIC_METHODS:
        own = [t for t in traces if t["method"] == method]
        assert sum(t["rendered"] for t in own) == len([r for r in expected if r["method"] == method])
        assert {t["colour"] for t in own} == {METHODS[method].colour}
        assert {t["name"] for t in own} == {METHODS[method].title}
    symbols = [s for t in traces for s in t["symbols"]]
    assert symbols.count("circle-open") == 1  # the stopped trial
    assert "x" in symbols  # configurations below --min-accuracy
    assert browser.get_log("browser") == []


def test_hovering_a_point_shows_its_config_checkpoint_and_numbers(browser, report):
    out, rows = report
    open_report(browser, out)
    traces = checkpoint_traces(browser)
    hover_texts = [text for t in traces for text in t["hover"]]
    keys = config_columns(rows)
    for row in drawable(rows):
        text = next(t for t in hover_texts if f"checkpoint: {row['checkpoint_path']}<br>" in t)
        assert f"val: clean {row['val_clean_acc']:.2f} %, ASR {row['val_asr']:.2f} %" in text
        assert f"test: clean {row['test_clean_acc']:.2f} %, ASR {row['test_asr']:.2f} %" in text
        assert all(f"{key}=" in text for key in keys)
    # a real hover over the stopped trial, alone at the top left, brings its text up
    trace = next(t for t in traces if any("digits_delta_stopped" in text for text in t["hover"]))
    index = next(i for i, text in enumerate(trace["hover"]) if "digits_delta_stopped" in text)
    uid = browser.execute_script("const gd = document.getElementById('pareto');"
                                 "return gd._fullData.find(t => (gd.data[t.index].hovertext || [])"
                                 ".some(text => text.includes('digits_delta_stopped'))).uid")
    point = browser.find_elements(By.CSS_SELECTOR, f"#pareto .trace{uid} path.point")[index]
    ActionChains(browser).move_to_element(point).perform()
    shown = WebDriverWait(browser, WAIT_S).until(
        lambda driver: driver.find_element(By.CSS_SELECTOR, "#pareto .hoverlayer").text or False)
    assert "checkpoint: /runs/demo/digits_delta_stopped/ckpt" in shown and "stopped early" in shown
    assert browser.get_log("browser") == []


def test_clicking_a_method_in_the_legend_hides_its_points(browser, report):
    out, rows = report
    open_report(browser, out)
    before = sum(t["rendered"] for t in checkpoint_traces(browser))
    entry = next(e for e in browser.find_elements(By.CSS_SELECTOR, "#pareto .legend .traces")
                 if e.find_element(By.CSS_SELECTOR, ".legendtext").text == METHODS["renofeation"].title)
    entry.find_element(By.CSS_SELECTOR, ".legendtoggle").click()
    hidden = len([r for r in drawable(rows) if r["method"] == "renofeation"])
    WebDriverWait(browser, WAIT_S).until(
        lambda driver: sum(t["rendered"] for t in checkpoint_traces(driver)) == before - hidden)
    states = {(t["method"], t["visible"]) for t in checkpoint_traces(browser)}
    assert states == {("renofeation", "legendonly"), ("delta", True), ("l2sp", True)}
    assert browser.get_log("browser") == []


def test_the_method_menu_shows_one_method_and_keeps_the_fronts(browser, report):
    out, rows = report
    open_report(browser, out)
    browser.find_element(By.CSS_SELECTOR, "#pareto .updatemenu-header-group").click()
    button = next(b for b in browser.find_elements(By.CSS_SELECTOR, "#pareto .updatemenu-dropdown-button")
                  if b.get_attribute("textContent") == METHODS["delta"].title)
    button.click()
    shown = len([r for r in drawable(rows) if r["method"] == "delta"])
    WebDriverWait(browser, WAIT_S).until(
        lambda driver: sum(t["rendered"] for t in checkpoint_traces(driver)) == shown)
    fronts = [t for t in browser.execute_script(TRACES_JS) if t["meta"] == "front"]
    assert len(fronts) == 2 and all(t["visible"] is True and t["rendered"] == t["points"] for t in fronts)
    assert browser.get_log("browser") == []
