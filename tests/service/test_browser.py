"""The page in real headless Chromium: type a sentence, parse it, and find the drawn tree's
leaves, the distance bars and the perplexity.  A screenshot is saved in the test's tmp_path."""

from __future__ import annotations

import shutil
import sys

import pytest

from onlstm.models.text import tokenize

from ..helpers import free_port, running_server

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, monkeypatch_module):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    # never let Selenium Manager look for drivers online: we name both binaries
    monkeypatch_module.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,1000",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def page_server(tiny_checkpoint, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("page-server") / "server.log"
    command = [sys.executable, "-m", "onlstm", "serve", "--port", str(port), "--checkpoint", str(tiny_checkpoint)]
    with running_server(command, port, log) as base:
        yield base


def parse_in_page(browser, base: str, text: str, expected_sentences: int):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{base}/")
    wait = WebDriverWait(browser, 30)
    # the page shows the model's name once /ready and /model have answered
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "model-info"), "version"))
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    browser.find_element(By.ID, "parse-button").click()
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#results svg.parse-tree")) == expected_sentences)
    return browser.find_elements(By.CSS_SELECTOR, "#results article.sentence")


def test_page_draws_the_tree_with_the_words_as_leaves(browser, page_server, tmp_path):
    from selenium.webdriver.common.by import By

    sentence = "The quick brown fox jumps over the lazy dog."
    (card,) = parse_in_page(browser, page_server, sentence, 1)
    leaves = [leaf.text for leaf in card.find_elements(By.CSS_SELECTOR, "svg.parse-tree text.leaf")]
    assert leaves == tokenize(sentence)
    assert [word for word in leaves if word != "."] == sentence.rstrip(".").split()
    # a bar per token, internal nodes for a binary tree, and the perplexity as a number
    assert len(card.find_elements(By.CSS_SELECTOR, "svg.parse-tree rect.bar")) == len(leaves)
    assert len(card.find_elements(By.CSS_SELECTOR, "svg.parse-tree circle.node")) == len(leaves) - 1
    assert float(card.find_element(By.CSS_SELECTOR, ".perplexity").text) > 0
    # the tree's edges reach every leaf: the drawing is connected
    assert len(card.find_elements(By.CSS_SELECTOR, "svg.parse-tree line.edge")) == 2 * (len(leaves) - 1)
    screenshot = tmp_path / "page.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")


def test_page_draws_one_tree_per_sentence_and_shows_errors(browser, page_server):
    from selenium.webdriver.common.by import By

    cards = parse_in_page(browser, page_server, "Stocks fell (sharply) today. The company said it expects earnings to rise!", 2)
    first = [leaf.text for leaf in cards[0].find_elements(By.CSS_SELECTOR, "text.leaf")]
    second = [leaf.text for leaf in cards[1].find_elements(By.CSS_SELECTOR, "text.leaf")]
    assert first == ["Stocks", "fell", "(", "sharply", ")", "today", "."]
    assert second == tokenize("The company said it expects earnings to rise!")
    # an API error is shown to the person, not swallowed
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys("word " * 300)  # over the default 250 tokens per sentence
    browser.find_element(By.ID, "parse-button").click()
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda driver: driver.find_element(By.ID, "error").is_displayed())
    assert "at most 250" in browser.find_element(By.ID, "error").text
