"""The web page in a real browser (Debian's headless chromium, driven by Selenium): type a
sentence, see its translation, and a heatmap with one cell per target x source token of the
API's attention matrix.

Needs ``apt-get install chromium chromium-driver`` (``.ci/run`` installs them); skipped with
the reason when either is missing. Selenium Manager never runs: the driver's path is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="nmt serve's tests need the serve extra: "
                    "pip install 'nmt[serve]'")
pytest.importorskip("httpx", reason="the dev extra")
pytest.importorskip("selenium", reason="the dev extra (pip install selenium)")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    missing = ", ".join(str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file())
    pytest.skip(f"the browser test needs Debian's chromium and chromium-driver ({missing} "
                f"missing): apt-get install chromium chromium-driver", allow_module_level=True)

import httpx  # noqa: E402
import torch  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from serve_support import build_run, live_server  # noqa: E402

from nmt.serve.app import create_app  # noqa: E402
from nmt.serve.settings import ServeSettings  # noqa: E402
from nmt.translate import Translator  # noqa: E402

SENTENCE = "汤姆在哪里？"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    run = build_run(tmp_path_factory.getbasetemp() / "translate-runs", "transformer")
    translator = Translator.load(run, device="cpu")
    with live_server(create_app(translator, ServeSettings(api_key="page-key"))) as base:
        yield base
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory,
            monkeypatch_module: pytest.MonkeyPatch) -> Iterator[Any]:  # fmt: skip
    monkeypatch_module.setenv("SE_OFFLINE", "true")  # belt and braces: no downloads
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--no-first-run", "--window-size=1200,900",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_type_a_sentence_and_see_its_translation_and_heatmap(url: str, browser: Any) -> None:
    expected = httpx.post(f"{url}/v1/translate", headers={"X-API-Key": "page-key"},
                          json={"sentences": [SENTENCE], "attention": True}).json()
    (result,) = expected["translations"]
    weights = result["attention"]["weights"]
    assert weights and weights[0], "pick a sentence the random model answers with tokens"
    rows, cols = len(weights), len(weights[0])

    browser.get(url)
    wait = WebDriverWait(browser, 60)
    browser.find_element(By.ID, "source").send_keys(SENTENCE)
    browser.find_element(By.ID, "translate").click()
    # The page has no key yet: the server says 403 and the page asks for one.
    key_field = wait.until(lambda b: b.find_element(By.ID, "api-key") if
                           b.find_element(By.ID, "key-form").is_displayed() else None)
    key_field.send_keys("page-key")
    browser.find_element(By.ID, "save-key").click()

    table = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "table.heatmap") or None)[0]
    translation = browser.find_element(By.CSS_SELECTOR, ".result .translation").text
    assert translation == result["translation"]
    cells = table.find_elements(By.CSS_SELECTOR, "td.cell")
    assert len(cells) == rows * cols
    assert len(table.find_elements(By.CSS_SELECTOR, "tbody tr")) == rows
    assert [th.text for th in table.find_elements(By.CSS_SELECTOR, "th.tgt")] == \
        result["attention"]["target_tokens"]  # fmt: skip
    assert (table.get_attribute("data-rows"), table.get_attribute("data-cols")) == (
        str(rows), str(cols))
    assert browser.find_element(By.ID, "error").is_displayed() is False


def test_options_reach_the_server(url: str, browser: Any) -> None:
    browser.get(url)  # the key is kept for the session
    wait = WebDriverWait(browser, 60)
    browser.find_element(By.CSS_SELECTOR, "#strategy option[value='beam']").click()
    n_best = browser.find_element(By.ID, "n_best")
    n_best.send_keys("2")
    browser.find_element(By.ID, "source").send_keys(SENTENCE)
    browser.find_element(By.ID, "translate").click()
    items = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".nbest li") or None)
    assert len(items) == 2
    # A value the server refuses comes back as its one-line message.
    browser.find_element(By.ID, "beam_size").send_keys("0")
    browser.find_element(By.ID, "translate").click()
    error = wait.until(lambda b: b.find_element(By.ID, "error").text or None)
    assert "decode.beam_size" in error

