"""`export --html`: the drawing page in a real browser (headless Chromium driven by Selenium).

The page is served from 127.0.0.1, a stroke is drawn with pointer events, and the model must add points
beyond it with no error in the console; once with the page's own sampler and once on the real
@magenta/sketch bundle. Skips with the reason when Chromium, chromedriver or Selenium are missing
(`.ci/run` installs them: apt-get install chromium chromium-driver).
"""
import functools
import http.server
import os
import shutil
import tempfile
import threading
import time

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is needed: pip install selenium")

from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.actions.pointer_input import PointerInput
from selenium.webdriver.common.by import By
from test_export_js import browser_run, magenta_sketch, sample_npz  # noqa: F401  (fixtures)

from sketchprep.cli import main

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=800,900"]


def _find(*names):
    return next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture
def browser(tmp_path):
    chromium, driver = _find("chromium", "chromium-browser", "google-chrome"), _find("chromedriver")
    if not chromium or not driver:
        pytest.skip("headless Chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        b = webdriver.Chrome(options=options, service=Service(driver))
    except Exception as e:  # noqa: BLE001  (a broken install: say what happened and skip)
        pytest.skip(f"Chromium did not start: {str(e).splitlines()[0]}")
    yield b
    b.quit()


@pytest.fixture
def serve():
    servers = []

    def start(folder):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _wait_for(browser, condition: str, seconds: float = 60.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = browser.execute_script(f"return {condition};")
        if value:
            return value
        time.sleep(0.1)
    state = browser.execute_script("return JSON.stringify(window.sketchPage || null);")
    raise AssertionError(f"timed out waiting for {condition}; page: {state[:500]}")


def draw_stroke(browser, points) -> None:
    """Press, move through `points` (canvas pixels from its top-left corner) and lift, as pointer events."""
    canvas = browser.find_element(By.ID, "board")
    rect = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top];", canvas)
    actions = ActionBuilder(browser, mouse=PointerInput("pen", "pen"))
    pen = actions.pointer_action
    x0, y0 = points[0]
    pen.move_to_location(int(rect[0] + x0), int(rect[1] + y0))
    pen.pointer_down()
    for x, y in points[1:]:
        pen.move_to_location(int(rect[0] + x), int(rect[1] + y))
    pen.pointer_up()
    actions.perform()


def red_pixels(browser) -> int:
    return browser.execute_script("""
        const c = document.getElementById('board'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 150 && d[i + 1] < 120 && d[i + 3] > 0) n++;
        return n;""")


def console_errors(browser) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def _check_page(browser, url, runtime: str, screenshot=None):
    browser.get(url)
    _wait_for(browser, "window.sketchPage && window.sketchPage.state !== 'loading'")
    assert browser.execute_script("return window.sketchPage.state") == "ready", \
        browser.execute_script("return window.sketchPage.error")
    assert browser.execute_script("return window.sketchPage.runtime") == runtime
    stroke = [(150 + 4 * i, 200 + (i * i) % 37 - 10 * (i > 20)) for i in range(0, 50, 2)]
    draw_stroke(browser, stroke)
    _wait_for(browser, "window.sketchPage.state === 'done' || window.sketchPage.state === 'error'")
    page = browser.execute_script("return window.sketchPage")
    assert page["state"] == "done", page.get("error")
    assert len(page["userStrokes"]) == 1 and len(page["userStrokes"][0]) >= 2
    tries = 1
    while not page["modelLines"] and tries < 10:    # a small model may end at once or only move: ask again
        browser.find_element(By.ID, "sample").click()
        _wait_for(browser, "window.sketchPage.state === 'done'")
        page, tries = browser.execute_script("return window.sketchPage"), tries + 1
    assert len(page["modelRows"]) > 0 and page["modelLines"] > 0, "the model drew nothing beyond the prefix"
    assert red_pixels(browser) > 0                  # it is on the canvas, in the model's colour
    if screenshot:
        browser.save_screenshot(str(screenshot))
    assert console_errors(browser) == []
    return page


def test_page_draws_on_after_a_pen_stroke(browser, serve, browser_run, tmp_path):  # noqa: F811  (fixture)
    page_dir = tmp_path / "page"
    r = CliRunner().invoke(main, ["export", str(browser_run), "--html", str(page_dir)])
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(page_dir)) == ["app.js", "index.html", "model.gen.json", "sketchrnn-lite.js"]
    html = (page_dir / "index.html").read_text()
    assert "http://" not in html and "https://" not in html   # nothing from a CDN: works offline
    page = _check_page(browser, serve(page_dir), "lite", tmp_path / "page.png")
    assert (tmp_path / "page.png").stat().st_size > 0
    # Clear empties the board
    browser.find_element(By.ID, "clear").click()
    assert browser.execute_script("return window.sketchPage.userStrokes.length") == 0
    assert red_pixels(browser) == 0
    assert page["runs"] >= 1


def test_page_runs_on_the_real_magenta_sketch_bundle(browser, serve, browser_run, magenta_sketch,  # noqa: F811
                                                     tmp_path):
    bundle = magenta_sketch / "node_modules" / "@magenta" / "sketch" / "dist" / "magentasketch.js"
    page_dir = tmp_path / "page"
    r = CliRunner().invoke(main, ["export", str(browser_run), "--html", str(page_dir), "--runtime-js", str(bundle)])
    assert r.exit_code == 0, r.output
    assert (page_dir / "magentasketch.js").stat().st_size == bundle.stat().st_size
    _check_page(browser, serve(page_dir), "magenta")


def test_a_class_conditional_run_gets_a_class_menu(browser, serve, sample_npz, tmp_path):  # noqa: F811  (fixture)
    """The bundled sample's 12 words, one class-conditional model: a model file per class and a menu; choosing
    another class loads its file and the model draws on from the same strokes as that class."""
    from sketchrnn.model import HParams
    from sketchrnn.presets import read_preset
    from sketchrnn.train import train

    # 200 steps (a few seconds): after 30 the class-conditional decoder of 32 units still ended most drawings
    # at once (38 of 40 samples of the first class empty), and the page must see it draw lines
    hps = HParams.from_dict({**read_preset("classes"), "dec_rnn_size": 32, "batch_size": 20, "save_every": 200})
    train([str(sample_npz)], tmp_path / "run", hps, max_steps=200, samples=0)
    page_dir = tmp_path / "page"
    r = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--html", str(page_dir)])
    assert r.exit_code == 0, r.output
    assert "model-11.gen.json" in os.listdir(page_dir) and "model.gen.json" not in os.listdir(page_dir)
    url = serve(page_dir)
    _check_page(browser, url, "lite")
    names = browser.execute_script("return Array.from(document.getElementById('class').options)"
                                   ".map(o => o.textContent)")
    assert len(names) == 12 and names[0] == "broom" and "light bulb" in names
    assert browser.execute_script("return document.getElementById('class-menu').hidden") is False
    browser.execute_script("const m = document.getElementById('class'); m.selectedIndex = 4;"
                           "m.dispatchEvent(new Event('change'));")
    _wait_for(browser, "window.sketchPage.className === arguments[0] && window.sketchPage.state === 'done'"
              .replace("arguments[0]", repr(names[4])))
    assert browser.execute_script("return window.sketchPage.runs") >= 2    # drawn again, as the new class
    assert console_errors(browser) == []
