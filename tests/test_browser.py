"""Real-browser tests (headless Debian chromium + chromedriver through Selenium): (a) the HTML ablation
report, (b) JupyterLab runs notebook 01 and the curator's Save writes the overrides, (c) the explorer
renders an overlay for a free vocabulary. Screenshots go to reports/ (git-ignored).

Skipped, with the reason, when chromium / chromedriver / selenium are absent (``scripts/setup.sh``
installs chromium when apt and root are available; CI has them).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
SHOTS = REPO / "reports" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("headless browser tests need Debian's `chromium` and `chromium-driver` "
                    "(apt-get install -y chromium chromium-driver; scripts/setup.sh does it as root)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield drv
    drv.quit()


def _wait(fn, timeout: float, what: str, step: float = 0.5):
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = fn()
        except Exception:  # noqa: BLE001 - the page is still loading
            v = None
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---------------------------------------------------------------------------------------- (a) report
def test_report_page_shows_every_table_and_image(browser, tmp_path):
    from selenium.webdriver.common.by import By

    from ovlab.report.ablation import Layout, build_report
    from tests.test_ablation_report import _cell

    r = tmp_path / "results"
    _cell(r / "gkc" / "table4" / "none", {"pascal_context_59": 40.0})
    _cell(r / "scan" / "table3" / "baseline", {"ade20k_150": 30.0})
    tables = build_report(Layout(root=tmp_path))
    browser.get((tmp_path / "reports" / "ablation.html").as_uri())
    sections = browser.find_elements(By.CSS_SELECTOR, "section.report-table")
    assert len(sections) == len(tables)
    ran = [s for s in sections if s.get_attribute("data-ran") == "true"]
    assert {s.get_attribute("id") for s in ran} == {"gkc_table4", "scan_table3"}
    assert all(s.find_elements(By.CSS_SELECTOR, "table.ovlab-table") for s in ran)
    assert all("Not run" in s.text for s in sections if s not in ran)
    imgs = browser.find_elements(By.CSS_SELECTOR, "img.plot")
    assert len(imgs) == sum(t.plot is not None for t in tables) >= 2
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i) for i in imgs)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Traceback" not in body and "Error" not in body
    browser.save_screenshot(str(SHOTS / "report.png"))


# ---------------------------------------------------------------------------------------- JupyterLab
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free loopback port, rooted at a scratch copy (notebook 01, params.yaml,
    a dvc.yaml so the notebook counts as a stage notebook, the overrides file)."""
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("needs chromium and chromium-driver")
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    (root / "dvc.yaml").write_text("stages: {}\n")
    # the run reads synonyms.overrides relative to the root: a copy there, edited by the curator too
    overrides = root / "ovlab" / "vocab" / "curation" / "coco_panoptic_133.yaml"
    overrides.parent.mkdir(parents=True)
    shutil.copy(REPO / "ovlab" / "vocab" / "curation" / "coco_panoptic_133.yaml", overrides)
    nb = nbformat.read(REPO / "notebooks" / "01_synonym_curation.ipynb", as_version=4)
    par = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    par.source = par.source.replace("curation_file = None", f"curation_file = {str(overrides)!r}")
    nbformat.write(nb, root / "notebooks" / "01_synonym_curation.ipynb")
    port, token = _free_port(), "ovlabtest"
    env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
         "--FileContentsManager.pre_save_hook=ovlab.notebook.pre_save_hook", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.expose_app_in_browser=True", "--allow-root"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import urllib.request

    try:
        _wait(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2).status == 200,
              90, "the JupyterLab server")
        yield {"url": f"http://127.0.0.1:{port}", "token": token, "root": root, "overrides": overrides}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _open(browser, lab, path: str):
    from selenium.webdriver.common.by import By

    browser.get(f"{lab['url']}/lab/tree/{path}?token={lab['token']}")
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), 120, f"{path} to open")
    # the notebook just opened is the current one (another may be open already) and its kernel is idle
    _wait(lambda: browser.execute_script(
        "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        "if (!w || !w.context || w.context.path !== arguments[0]) return false;"
        "const k = w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
        "return !!k && k.status === 'idle';", path), 120, f"{path}'s kernel to start")


def _wait_widget(browser, css: str, what: str, shot: str, timeout: float = 150):
    """Wait for a widget; on timeout save a screenshot and fail with the notebook's error outputs."""
    from selenium.webdriver.common.by import By

    try:
        return _wait(lambda: browser.find_element(By.CSS_SELECTOR, css), timeout, what)
    except AssertionError:
        browser.save_screenshot(str(SHOTS / f"{shot}_failed.png"))
        errors = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.stderr'], .jp-RenderedText[data-mime-type*='error']")]
        raise AssertionError(f"timed out waiting for {what}; notebook errors: {errors[-3:]}") from None


def _run_all(browser):
    browser.execute_script("window.jupyterapp && window.jupyterapp.commands.execute('notebook:run-all-cells')")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    if not browser.execute_script("return !!window.jupyterapp"):  # no global app handle: use the menu
        browser.find_element(By.CSS_SELECTOR, ".jp-Notebook").click()
        menu = next(m for m in browser.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if m.text.strip() == "Run")
        menu.click()
        _wait(lambda: browser.find_element(By.CSS_SELECTOR, "li[data-command='notebook:run-all-cells']"), 10,
              "the Run menu").click()
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)


def test_jupyterlab_runs_notebook_01_and_the_curator_saves(browser, lab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from ovlab.vocab.overrides import load_overrides

    nb_path = lab["root"] / "notebooks" / "01_synonym_curation.ipynb"
    before_nb = nb_path.read_bytes()
    before = lab["overrides"].read_text()
    _open(browser, lab, "notebooks/01_synonym_curation.ipynb")
    _run_all(browser)
    curator = _wait_widget(browser, ".ovlab-curator", "the curator widget", "curator")
    assert curator.find_elements(By.CSS_SELECTOR, "select") and curator.find_elements(By.CSS_SELECTOR, ".ovlab-candidate")
    # the first class (person) has its candidates as check boxes: uncheck the first kept one, then Save
    box = next(c for c in curator.find_elements(By.CSS_SELECTOR, ".ovlab-candidate input") if c.is_selected())
    label = box.find_element(By.XPATH, "..").text
    name = label.split(" (")[0]
    browser.execute_script("arguments[0].scrollIntoView()", box)
    box.click()
    save = next(b for b in curator.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == "Save")
    save.click()
    _wait(lambda: lab["overrides"].read_text() != before, 30, "the overrides file to be written")
    browser.save_screenshot(str(SHOTS / "curator.png"))
    after = lab["overrides"].read_text()
    person = after.split("\n  person:\n", 1)[1].split("\n  bicycle:", 1)[0]
    assert f"{name}]" in person.split("remove: [", 1)[1].split("\n")[0]
    assert [ln for ln in after.splitlines() if ln.lstrip().startswith("#")] == \
        [ln for ln in before.splitlines() if ln.lstrip().startswith("#")]
    load_overrides(lab["overrides"])
    assert "Saved" in curator.text
    # saving the notebook after the hand run leaves the stage notebook's bytes unchanged
    browser.find_element(By.CSS_SELECTOR, ".jp-Notebook").send_keys(Keys.CONTROL, "s")
    time.sleep(3)
    assert nb_path.read_bytes() == before_nb
    assert not (lab["root"] / "results").exists()          # the hand run wrote to the scratch folder
    assert (lab["root"] / ".cache" / "ovlab" / "scratch" / "results" / "synonyms").is_dir()


def test_explorer_renders_an_overlay_for_a_free_vocabulary(browser, lab):
    from selenium.webdriver.common.by import By

    cells = [
        "import numpy as np\n"
        "from ovlab.config import StageParams\nfrom ovlab.config.base import BaseParams\n"
        "from ovlab.config.tgkd import TgkdParams\nfrom ovlab.segmenter.build import build\n"
        "from ovlab.widgets.explorer import Explorer, ExplorerWidget\n"
        "from tests.conftest import tiny_tgkd_section\nfrom pathlib import Path\n"
        "cfg = TgkdParams.model_validate(tiny_tgkd_section(Path('.'), Path('.')))\n"
        "built = build(StageParams('tgkd', BaseParams(), cfg, Path('.'), '<test>'))\n"
        "img = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)\n"
        "w = ExplorerWidget(Explorer(loader=lambda p, d: built), checkpoints=['tiny.pt'], images=[('random', img)],\n"
        "                   vocabulary='sky, grass|lawn, car')\n"
        "w.show(True)\nw.short_side.value = 64\nw.run();",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (lab["root"] / "explore.ipynb").write_text(nbformat.writes(nb))
    (lab["root"] / "tests").mkdir(exist_ok=True)
    shutil.copy(REPO / "tests" / "conftest.py", lab["root"] / "tests" / "conftest.py")
    (lab["root"] / "tests" / "__init__.py").write_text("")
    _open(browser, lab, "explore.ipynb")
    _run_all(browser)
    _wait_widget(browser, ".ovlab-explorer", "the explorer widget", "explorer")
    try:
        img = _wait(lambda: next(i for i in browser.find_elements(By.CSS_SELECTOR, ".ovlab-overlay")
                                 if browser.execute_script("return arguments[0].naturalWidth > 0", i)), 150,
                    "the explorer's overlay")
    except AssertionError:
        browser.save_screenshot(str(SHOTS / "explorer_failed.png"))
        raise AssertionError("no overlay; the form says: "
                             + browser.find_element(By.CSS_SELECTOR, ".ovlab-explorer").text[-300:]) from None
    assert browser.execute_script("return arguments[0].naturalWidth", img) == 2 * 96
    root = browser.find_element(By.CSS_SELECTOR, ".ovlab-explorer")
    _wait(lambda: "done" in root.text, 30, "the explorer's status")
    assert "grass" in root.text and "top-3" in root.text and "area %" in root.text
    # a click on the overlay half picks that pixel (ipyevents): the top-3 box names it
    from selenium.webdriver.common.action_chains import ActionChains

    width = browser.execute_script("return arguments[0].getBoundingClientRect().width", img)
    height = browser.execute_script("return arguments[0].getBoundingClientRect().height", img)
    ActionChains(browser).move_to_element_with_offset(img, int(width * 0.25), int(-height * 0.25)).click().perform()

    def picked():
        import re

        m = re.search(r"top-3 at \((\d+), (\d+)\)", root.text)
        return m and abs(int(m[1]) - 48) <= 2 and abs(int(m[2]) - 16) <= 2

    try:
        _wait(picked, 20, "the clicked pixel (48, 16) in the top-3 box")
    finally:
        browser.save_screenshot(str(SHOTS / "explorer.png"))
    browser.save_screenshot(str(SHOTS / "explorer.png"))
