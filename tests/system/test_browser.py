"""The course as a learner meets it: JupyterLab in headless Chromium, widgets moved by keyboard.

Starts JupyterLab on 127.0.0.1 (free port, no token, news and update checks off) over a temporary
copy of the notebooks, opens a notebook, runs its cells up to an explorer widget with Shift+Enter,
moves sliders with the arrow keys the way a person would, and checks that the rendered image and
the readout changed. Every request that is not to 127.0.0.1 is aborted. Screenshots are saved to
``test-artifacts/`` (or ``$DDIM_LESSON_ARTIFACTS``). Run just these with ``pytest -m browser``.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and Python's ``playwright`` (no
``playwright install``: that downloads a browser). Locally they are skipped when missing; under
CI (``CI=true``) a missing piece fails the test instead, so a green CI always means they ran.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("DDIM_LESSON_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("DDIM_LESSON_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"  # the visible notebook only
ACTIVE_CELL_JS = (
    f"() => Array.from(document.querySelectorAll('{NOTEBOOK} .jp-Cell'))"
    ".findIndex(c => c.classList.contains('jp-mod-active'))"
)

RUNNING_CELL_JS = (  # the index of the first cell whose prompt shows [*] (running or queued), or -1
    f"() => Array.from(document.querySelectorAll('{NOTEBOOK} .jp-Cell'))"
    ".findIndex(c => (c.querySelector('.jp-InputPrompt') || {}).innerText?.includes('*'))"
)
KERNEL_BUSY_JS = ("() => Array.from(document.querySelectorAll('.jp-StatusBar-Widget'))"
                  ".some(e => e.innerText.includes('| Busy'))")
IDLE_GRACE_S = 90  # how long the kernel may sit idle while what we wait for still has not happened
CAP_S = 1800  # the most any one wait lasts, busy or not

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def wait_patiently(page, check, what: str, idle_grace_s: float = IDLE_GRACE_S, cap_s: float = CAP_S):  # noqa: ANN001, ANN201
    """Poll ``check()`` until it returns something truthy, and return it.

    A busy machine makes the kernel slow, not wrong: while the kernel is busy this keeps waiting (up to
    ``cap_s``), so a learner's loaded laptop does not fail on patience. It gives up once the kernel has
    been idle for ``idle_grace_s`` with ``what`` still not there, and says which cell it was waiting on.
    """
    start, idle_since = time.monotonic(), None
    while True:
        result = check()
        if result:
            return result
        now = time.monotonic()
        busy = page.evaluate(KERNEL_BUSY_JS)
        idle_since = None if busy else (idle_since or now)
        if now - start > cap_s or (idle_since is not None and now - idle_since > idle_grace_s):
            running = page.evaluate(RUNNING_CELL_JS)
            active = page.evaluate(ACTIVE_CELL_JS)
            state = "busy" if busy else f"idle for {now - idle_since:.0f} s"
            raise AssertionError(f"gave up waiting for {what} after {now - start:.0f} s; the kernel is {state}; "
                                 f"running cell: {running if running >= 0 else 'none'}, active cell: {active}")
        time.sleep(0.5)


def _require_browser_stack() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install playwright)")
    if missing:
        msg = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings: Path) -> None:
    """User settings for an isolated JupyterLab: no news, no update check, all cells rendered."""
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false", "checkForUpdates": False,
        },
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }  # fmt: skip
    for rel, content in files.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JupyterLab server over a temporary copy of notebooks/ (so autosave never touches git)."""
    _require_browser_stack()
    home = tmp_path_factory.mktemp("lab")
    work = home / "course"
    shutil.copytree(ROOT / "notebooks", work / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    if (ROOT / "benchmarks").exists():
        (work / "benchmarks").symlink_to(ROOT / "benchmarks")
    _write_settings(home / "settings")
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
           f"--ServerApp.root_dir={work / 'notebooks'}", "--LabApp.extension_manager=readonly",
           "--ServerApp.port_retries=0"]
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, proc, home / "server.log")
        yield url
    finally:
        _stop(proc)
        log.close()


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and its kernels (its whole process group), freeing the port."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture
def page(lab_url: str, request: pytest.FixtureRequest) -> Iterator:
    """A Chromium page that can reach only 127.0.0.1; the browser always closes."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []

    def only_local(route) -> None:  # noqa: ANN001 (playwright's Route)
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.route("**/*", only_local)
            pg = context.new_page()
            pg.set_default_timeout(180_000)
            try:
                yield pg
            finally:  # the last view, pass or fail
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"))
        finally:
            browser.close()
    assert all("127.0.0.1" not in u for u in blocked)


def open_notebook(page, lab_url: str, name: str) -> int:  # noqa: ANN001
    """Open a notebook and wait until its kernel is idle and every cell is rendered."""
    n_cells = len(json.loads((ROOT / "notebooks" / name).read_text())["cells"])
    page.goto(f"{lab_url}/lab/tree/{name}?reset")  # ?reset: no tabs restored from an earlier test
    page.locator(".jp-StatusBar-Widget", has_text="| Idle").first.wait_for()
    page.wait_for_function(f"() => document.querySelectorAll('{NOTEBOOK} .jp-Cell').length === {n_cells}")
    return n_cells


def run_through_cell(page, name: str, marker: str) -> int:  # noqa: ANN001
    """Shift+Enter from the first cell through the first code cell whose source contains ``marker``."""
    cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
    target = next(i for i, c in enumerate(cells) if c["cell_type"] == "code" and marker in "".join(c["source"]))
    page.locator(f"{NOTEBOOK} .jp-Cell").first.click()
    page.keyboard.press("Escape")  # command mode, as after a click on the prompt
    for i in range(target + 1):
        page.keyboard.press("Shift+Enter")
        page.wait_for_function(f"() => ({ACTIVE_CELL_JS})() === {i + 1}")
    return target


def widget_box(page, description: str):  # noqa: ANN001, ANN201
    """The slider widget whose label reads ``description``."""
    return page.locator(".widget-slider", has=page.locator(".widget-label", has_text=description)).first


def press_slider(page, description: str, key: str, times: int) -> str:  # noqa: ANN001
    """Focus a slider's handle and press an arrow key, as a person would; returns the readout."""
    box = widget_box(page, description)
    box.locator(".noUi-handle").first.focus()
    for _ in range(times):
        page.keyboard.press(key)
    page.wait_for_timeout(300)
    return box.locator(".widget-readout").inner_text()


def wait_for_image_change(image, before: bytes) -> bytes:  # noqa: ANN001
    """Poll the rendered pixels of an image element until they differ from ``before`` (patiently)."""
    return wait_patiently(image.page, lambda: (lambda now: now if now != before else None)(image.screenshot()),
                          "the explorer's image to change")


def open_explorer(page, lab_url: str, name: str, marker: str):  # noqa: ANN001, ANN201
    """Open ``name``, run it through the explorer cell; return (cell, image, readout) locators."""
    open_notebook(page, lab_url, name)
    cell = page.locator(f"{NOTEBOOK} .jp-Cell").nth(run_through_cell(page, name, marker))
    image = cell.locator(".widget-image").first
    wait_patiently(page, lambda: image.count() > 0 and image.is_visible(), f"the explorer of {name} to appear")
    page.wait_for_timeout(500)  # let the first PNG paint
    return cell, image, cell.locator(".widget-html").first


def wait_for_text(page, element, text: str) -> None:  # noqa: ANN001
    wait_patiently(page, lambda: text in element.inner_text(), f"the text {text!r}")


def save_artifact(element, name: str) -> None:  # noqa: ANN001
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    element.screenshot(path=str(ARTIFACTS / name))


def test_forward_process_slider_in_jupyterlab(page, lab_url: str) -> None:  # noqa: ANN001
    """Notebook 01: moving the t slider re-noises the images and updates the readout."""
    cell, image, readout = open_explorer(page, lab_url, "01_forward_process.ipynb", "forward_explorer(")
    t0 = int(widget_box(page, "t").locator(".widget-readout").inner_text())
    before = image.screenshot()

    shown = press_slider(page, "t", "ArrowRight", 25)
    assert int(shown) == t0 + 25, f"the t readout shows {shown}, expected {t0 + 25}"
    assert wait_for_image_change(image, before) != before
    wait_for_text(page, readout, f"t = {t0 + 25}")
    save_artifact(cell, "forward-explorer.png")


def test_sampler_explorer_steps_and_eta_in_jupyterlab(page, lab_url: str) -> None:  # noqa: ANN001
    """Notebook 04: moving the steps and η sliders re-samples and updates the readout."""
    cell, image, readout = open_explorer(page, lab_url, "04_eta_and_interpolation.ipynb", "sampler_explorer(")
    steps0 = int(widget_box(page, "steps").locator(".widget-readout").inner_text())
    eta0 = float(widget_box(page, "eta").locator(".widget-readout").inner_text())
    assert eta0 <= 0.5, "the test moves eta up by 0.5"
    first = image.screenshot()

    assert int(press_slider(page, "steps", "ArrowRight", 5)) == steps0 + 5
    after_steps = wait_for_image_change(image, first)
    wait_for_text(page, readout, f"steps = {steps0 + 5}")

    assert float(press_slider(page, "eta", "ArrowRight", 5)) == pytest.approx(eta0 + 0.5)
    after_eta = wait_for_image_change(image, after_steps)
    wait_for_text(page, readout, f"eta = {eta0 + 0.5:.1f}")
    assert len({first, after_steps, after_eta}) == 3, "each slider move must change the rendered samples"
    save_artifact(cell, "sampler-explorer.png")


def test_guidance_scale_slider_in_jupyterlab(page, lab_url: str) -> None:  # noqa: ANN001
    """Notebook 07: moving the guidance-scale slider re-samples the class and updates the readout."""
    cell, image, readout = open_explorer(page, lab_url, "07_guidance.ipynb", "guidance_explorer(")
    scale0 = float(widget_box(page, "scale").locator(".widget-readout").inner_text())
    assert scale0 <= 5.0, "the test moves the scale up by 2"
    before = image.screenshot()

    shown = press_slider(page, "scale", "ArrowRight", 4)  # step 0.5
    assert float(shown) == pytest.approx(scale0 + 2.0), f"the scale readout shows {shown}, expected {scale0 + 2.0}"
    assert wait_for_image_change(image, before) != before, "a new scale must change the rendered samples"
    wait_for_text(page, readout, f"scale = {scale0 + 2.0:.1f}")
    save_artifact(cell, "guidance-explorer.png")


def test_solver_explorer_nfe_and_solver_in_jupyterlab(page, lab_url: str) -> None:  # noqa: ANN001
    """Notebook 06: moving the NFE slider and picking Heun re-solve; the readout says what Heun could spend."""
    cell, image, readout = open_explorer(page, lab_url, "06_solvers.ipynb", "solver_explorer(")
    nfe0 = int(widget_box(page, "NFE").locator(".widget-readout").inner_text())
    assert nfe0 <= 20, "the test moves NFE up by 10"
    first = image.screenshot()

    assert int(press_slider(page, "NFE", "ArrowRight", 10)) == nfe0 + 10
    after_nfe = wait_for_image_change(image, first)
    wait_for_text(page, readout, f"NFE = {nfe0 + 10}")

    solver = cell.locator(".widget-dropdown", has=page.locator(".widget-label", has_text="solver")).locator("select")
    solver.select_option("heun")  # as a person picks from the list
    after_heun = wait_for_image_change(image, after_nfe)
    wait_for_text(page, readout, "solver = heun")
    if (nfe0 + 10) % 2 == 0:
        wait_for_text(page, readout, f"so it ran {nfe0 + 9}")
    assert len({first, after_nfe, after_heun}) == 3, "each change must re-render the samples"
    save_artifact(cell, "solver-explorer.png")


def test_a_wrong_exercise_answer_shows_the_hint_alone_in_jupyterlab(page, lab_url: str) -> None:  # noqa: ANN001
    """Notebook 01: a plausible wrong answer (the variance for the std) reads as the checker's hint, in red,
    without a traceback or the checker's source; the reference cell after it shows no spoiler."""
    name = "01_forward_process.ipynb"
    open_notebook(page, lab_url, name)
    cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
    stub = next(i for i, c in enumerate(cells) if "def my_q_sample" in "".join(c["source"]))
    editor = page.locator(f"{NOTEBOOK} .jp-Cell").nth(stub).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text("def my_q_sample(x0, t, schedule, noise):\n"
                              "    a = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)\n"
                              "    return a * x0 + (1 - a) * noise")
    page.keyboard.press("Escape")
    run_through_cell(page, name, "check_q_sample(my_q_sample)")
    checker = page.locator(f"{NOTEBOOK} .jp-Cell").nth(stub + 1).locator(".jp-OutputArea")
    wait_patiently(page, lambda: "Not yet" in checker.inner_text(), "the checker's verdict")
    shown = checker.inner_text()
    assert "Hint" in shown or "hint" in shown, shown
    for frame_text in ("Traceback", "harness.py", "ddpm.py", "raise AssertionError", "File "):
        assert frame_text not in shown, f"the checker's frames leak into the output: {shown!r}"
    save_artifact(checker, "exercise-wrong-answer.png")
    ref = next(i for i, c in enumerate(cells)
               if c["cell_type"] == "code" and 'solution("q_sample")' in "".join(c["source"]))
    page.locator(f"{NOTEBOOK} .jp-Cell").nth(stub + 2).click()  # past the failed check: an error aborts a queue
    page.keyboard.press("Escape")
    for _ in range(ref - stub - 1):  # run cells stub + 2 .. ref
        page.keyboard.press("Shift+Enter")
    out = page.locator(f"{NOTEBOOK} .jp-Cell").nth(ref).locator(".jp-OutputArea")
    wait_patiently(page, lambda: "passes the same checker" in out.inner_text(), "the reference cell's line")
    assert "def reference_q_sample" not in out.inner_text(), "the reference solution must not be shown unasked"
