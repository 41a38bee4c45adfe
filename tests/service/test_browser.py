"""The page in real headless Chromium (1280 px window): type text, parse it, and check what is drawn.

Trees must fit their box with the root in sight (a 79-token sentence included) and zoom on demand;
errors clear old results and number sentences as the cards do; the layer selector carries each
layer's dev F1 and marks the default; PTB strings copy and download; all layers' trees sit side by
side; unknown-word shares and warnings show on the cards; the favicon is served; counts are singular
where they should be.  Screenshots go to the test's tmp_path, or to $ONLSTM_SCREENSHOTS when set
(to look at them)."""

from __future__ import annotations

import base64
import math
import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch

from onlstm.models.checkpoint import load_release, save_release

from ..helpers import ServerProcess, free_port, make_tiny_model, running_server

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
DEV_F1_PER_LAYER = [18.7, 51.0, 13.9]  # the bundled model's figures: layers 0 and 2 near random
# one sentence of 79 tokens (73 words, 5 commas and a full stop)
LONG_SENTENCE = (
    "When the committee that had been asked by the board to review the accounts of the company "
    "finally met in the large room on the third floor of the old building near the river, "
    "its members, who had travelled from many distant cities, found that the papers they needed "
    "were missing, and so they decided to postpone the whole "
    "meeting until the following week, when the missing papers would surely have been found."
)


def by():
    from selenium.webdriver.common.by import By

    return By


def wait(browser, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(condition)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, monkeypatch_module, downloads):
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
                     "--disable-dev-shm-usage", "--window-size=1280,1000", "--hide-scrollbars",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page_checkpoint(tmp_path_factory) -> Path:
    """The tiny random model with a card like the bundled one's: per-layer dev F1, layer 1 the default."""
    model, vocab = make_tiny_model()
    path = tmp_path_factory.mktemp("page-checkpoint") / "tiny-page.safetensors"
    metadata = {"name": "onlstm-tiny-page", "default_layer": 1, "default_decoder": "greedy", "punctuation": "attach",
                "default_right_branching_bias": 0.3, "dev_perplexity": 123.4, "dev_f1": 51.0, "dev_f1_per_layer": DEV_F1_PER_LAYER, "training_data": ["test"]}
    save_release(path, model, vocab, metadata, dtype=torch.float32)
    return path


@pytest.fixture(scope="module")
def page_server(page_checkpoint, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("page-server") / "server.log"
    command = [sys.executable, "-m", "onlstm", "serve", "--port", str(port), "--checkpoint", str(page_checkpoint)]
    with running_server(command, port, log) as base:
        yield base


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("ONLSTM_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def api_parse(base: str, **request) -> dict:
    response = httpx.post(f"{base}/parse", json=request, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def open_page(browser, base: str) -> None:
    browser.get(f"{base}/")
    # the page shows the model's name once /ready and /model have answered, then the layers
    wait(browser, lambda driver: "version" in driver.find_element(by().ID, "model-info").text)
    wait(browser, lambda driver: len(driver.find_elements(by().CSS_SELECTOR, "#layer option[value='0']")) == 1)


def submit(browser, text: str, all_layers: bool = False) -> None:
    box = browser.find_element(by().ID, "text")
    box.clear()
    box.send_keys(text)
    checkbox = browser.find_element(by().ID, "all-layers")
    if checkbox.is_selected() != all_layers:
        checkbox.click()
    browser.find_element(by().ID, "parse-button").click()


def parse_in_page(browser, base: str, text: str, expected_sentences: int, all_layers: bool = False) -> list:
    open_page(browser, base)
    submit(browser, text, all_layers)
    wait(browser, lambda driver: len(driver.find_elements(by().CSS_SELECTOR, "#results .main-tree svg.parse-tree"))
         == expected_sentences)
    return browser.find_elements(by().CSS_SELECTOR, "#results article.sentence")


def rect(browser, element) -> dict:
    return browser.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top,"
        " bottom: r.bottom, width: r.width, height: r.height};", element)


def snapshot(browser, element, path: Path) -> None:
    """A PNG of the whole element, also where it runs past the bottom of the window."""
    box = browser.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height};", element)
    shot = browser.execute_cdp_cmd("Page.captureScreenshot",
                                   {"format": "png", "captureBeyondViewport": True, "clip": {**box, "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 5_000


def leaves(card, scope: str = ".main-tree") -> list[str]:
    return [leaf.get_attribute("textContent") for leaf in card.find_elements(by().CSS_SELECTOR, f"{scope} text.leaf")]


def test_page_draws_the_tree_with_the_words_as_leaves(browser, page_server, shots):
    sentence = "The quick brown fox jumps over the lazy dog."
    (card,) = parse_in_page(browser, page_server, sentence, 1)
    (expected,) = api_parse(page_server, text=sentence)["results"]
    words = leaves(card)
    assert words == expected["tokens"]
    assert [word for word in words if word != "."] == sentence.rstrip(".").split()
    # a bar per token, internal nodes for a binary tree, and the perplexity as a number
    assert len(card.find_elements(by().CSS_SELECTOR, ".main-tree rect.bar")) == len(words)
    assert len(card.find_elements(by().CSS_SELECTOR, ".main-tree circle.node")) == len(expected["spans"])
    assert float(card.find_element(by().CSS_SELECTOR, ".perplexity").text) > 0
    # the tree's edges reach every leaf: the drawing is connected
    assert len(card.find_elements(by().CSS_SELECTOR, ".main-tree .edge")) == len(words) + len(expected["spans"]) - 1  # one edge into every node but the root
    # a short sentence is drawn at its natural size, words in columns, not slanted
    svg = card.find_element(by().CSS_SELECTOR, ".main-tree svg")
    assert "compact" not in svg.get_attribute("class")
    assert rect(browser, svg)["width"] == pytest.approx(float(svg.get_attribute("data-natural-width")), abs=1)
    assert card.find_element(by().CSS_SELECTOR, ".zoom-level").text == "fit (100%)"
    screenshot = shots / "page.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000


def test_a_79_token_sentence_fits_the_box_with_its_root_in_sight_and_zooms(browser, page_server, shots):
    (expected,) = api_parse(page_server, text=LONG_SENTENCE)["results"]
    assert len(expected["tokens"]) == 79
    (card,) = parse_in_page(browser, page_server, LONG_SENTENCE, 1)
    figure = card.find_element(by().CSS_SELECTOR, ".main-tree .figure")
    svg = figure.find_element(by().TAG_NAME, "svg")
    root = figure.find_element(by().CSS_SELECTOR, "circle.root")
    box, drawn = rect(browser, figure), rect(browser, svg)
    assert 950 < box["width"] < 1100, box  # the card's box in a 1280 px window
    assert drawn["width"] <= box["width"] + 0.5, (drawn, box)
    assert browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth + 1", figure)
    # every word is inside the box, in order, and the root above them all is on screen
    words = card.find_elements(by().CSS_SELECTOR, ".main-tree text.leaf")
    assert [word.get_attribute("textContent") for word in words] == expected["tokens"]
    centres = [(rect(browser, word)["left"] + rect(browser, word)["right"]) / 2 for word in words]
    assert centres == sorted(centres)
    assert all(box["left"] - 1 <= rect(browser, word)["left"] and rect(browser, word)["right"] <= box["right"] + 1
               for word in words)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", figure)
    spot = rect(browser, root)
    box = rect(browser, figure)
    assert box["left"] <= spot["left"] and spot["right"] <= box["right"], (spot, box)
    assert 0 <= spot["top"] and spot["bottom"] <= browser.execute_script("return window.innerHeight")
    assert spot["width"] >= 10, spot  # the root's dot keeps its size on screen when the tree is shrunk
    # the words stay legible: slanted in narrow columns, drawn at least at 8 px
    assert "compact" in svg.get_attribute("class")
    scale = float(card.find_element(by().CSS_SELECTOR, ".main-tree").get_attribute("data-scale"))
    assert 15 * scale >= 8, scale
    assert not card.find_element(by().CSS_SELECTOR, ".main-tree .zoom-hint").is_displayed()
    snapshot(browser, card, shots / "long-sentence-fit.png")

    # zooming in makes the tree wider than the box (scrolling sideways), the root still in sight
    zoom_in = card.find_element(by().CSS_SELECTOR, ".main-tree button[aria-label='Zoom in']")
    zoom_in.click()
    zoom_in.click()
    zoomed = float(card.find_element(by().CSS_SELECTOR, ".main-tree").get_attribute("data-scale"))
    assert zoomed == pytest.approx(scale * 1.25 * 1.25, rel=1e-3)
    assert rect(browser, svg)["width"] > rect(browser, figure)["width"] * 1.3
    assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", figure)
    spot, box = rect(browser, root), rect(browser, figure)
    assert box["left"] <= spot["left"] and spot["right"] <= box["right"], (spot, box)
    snapshot(browser, card, shots / "long-sentence-zoomed.png")
    # keyboard: the figure takes focus; 0 fits the width again, + zooms
    figure.send_keys("0")
    assert card.find_element(by().CSS_SELECTOR, ".zoom-level").text.startswith("fit (")
    assert rect(browser, svg)["width"] <= rect(browser, figure)["width"] + 0.5
    figure.send_keys("+")
    assert float(card.find_element(by().CSS_SELECTOR, ".main-tree").get_attribute("data-scale")) > scale


def test_errors_clear_old_results_and_count_sentences_from_one(browser, page_server, shots):
    cards = parse_in_page(browser, page_server, "Stocks fell (sharply) today! The company said it expects earnings to rise!", 2)
    assert leaves(cards[0]) == ["Stocks", "fell", "(", "sharply", ")", "today", "!"]
    assert [card.find_element(by().TAG_NAME, "h2").text[:3] for card in cards] == ["1. ", "2. "]
    # the second sentence is too long: the API and the page both count sentences from 1
    submit(browser, "Prices rose! Words " + "word " * 299)
    error = wait(browser, lambda driver: driver.find_element(by().ID, "error").is_displayed()
                 and driver.find_element(by().ID, "error"))
    assert "Sentence 2 has 300 tokens" in error.text, error.text
    assert "at most 250" in error.text
    # the trees of the earlier text are gone: they would read as the answer to this one
    assert browser.find_elements(by().CSS_SELECTOR, "#results article.sentence") == []
    assert browser.find_elements(by().CSS_SELECTOR, "#download-mrg") == []
    browser.save_screenshot(str(shots / "error.png"))
    # a token's position too: the third word of the second sentence is the third, not the second
    submit(browser, "Prices rose! Then prices " + "x" * 1200 + " fell!")
    wait(browser, lambda driver: "characters" in driver.find_element(by().ID, "error").text)
    shown = browser.find_element(by().ID, "error").text
    assert shown.startswith("Token 3 of sentence 2 ('xxxxx") and "has 1200 characters" in shown, shown
    # the next good parse hides the error again
    submit(browser, "The cat sat on the mat!")
    wait(browser, lambda driver: len(driver.find_elements(by().CSS_SELECTOR, "#results article.sentence")) == 1)
    assert not browser.find_element(by().ID, "error").is_displayed()


def test_the_layer_selector_gives_each_layers_dev_f1_and_marks_the_default(browser, page_server):
    from selenium.webdriver.support.ui import Select

    card = httpx.get(f"{page_server}/model", timeout=10).json()
    open_page(browser, page_server)
    select = Select(browser.find_element(by().ID, "layer"))
    labels = [option.text for option in select.options]
    default = card["default_layer"]
    assert len(labels) == card["n_layers"] == 3
    for index, label in enumerate(labels):
        assert label.startswith(f"layer {index} · dev F1 {DEV_F1_PER_LAYER[index]:.1f}"), label
        assert label.endswith("(default)") == (index == default), label
    assert select.first_selected_option.get_attribute("value") == str(default)
    assert "dev F1" in browser.find_element(by().ID, "layer-hint").text
    # the chosen layer is the one parsed
    select.select_by_value("2")
    submit(browser, "The cat sat on the mat!")
    wait(browser, lambda driver: len(driver.find_elements(by().CSS_SELECTOR, "#results .main-tree svg")) == 1)
    assert "layer 2" in browser.find_element(by().CSS_SELECTOR, "#results .stats").text


def test_the_gate_selector_marks_the_default_and_parses_with_the_chosen_gate(browser, page_server):
    from selenium.webdriver.support.ui import Select

    text = "The company said it expects earnings to rise sharply next year."
    open_page(browser, page_server)
    select = Select(browser.find_element(by().ID, "gate"))
    wait(browser, lambda driver: any(option.text.endswith("(default)") for option in select.options))
    assert [option.text for option in select.options] == ["forget, the paper's (default)", "input"]
    select.select_by_value("input")
    box = browser.find_element(by().ID, "prior")  # the model's own distances: the prior would hide the gate
    box.clear()
    box.send_keys("0")
    submit(browser, text)
    expected = api_parse(page_server, text=text, gate="input", right_branching_bias=0)["results"][0]["tree"]
    assert expected != api_parse(page_server, text=text, right_branching_bias=0)["results"][0]["tree"]
    wait(browser, lambda driver: [element.get_attribute("textContent") for element
                                  in driver.find_elements(by().CSS_SELECTOR, "#results pre.ptb")] == [expected])


def click_punctuation_first_and_parse(browser, server: str, ticked_before: bool) -> None:
    """Flip the box from what the model's default shows, parse, and see the tree the API gives with the
    box's new setting (different from the default's)."""
    text = "The company, which said it expects earnings to rise, fell sharply next year."
    open_page(browser, server)
    box = browser.find_element(by().ID, "punctuation-first")
    wait(browser, lambda driver: box.is_selected() == ticked_before)  # set when /model answers
    box.click()
    submit(browser, text)
    expected = api_parse(server, text=text, punctuation_first=not ticked_before)["results"][0]["tree"]
    assert expected != api_parse(server, text=text)["results"][0]["tree"]
    wait(browser, lambda driver: [element.get_attribute("textContent") for element
                                  in driver.find_elements(by().CSS_SELECTOR, "#results pre.ptb")] == [expected])


def test_the_punctuation_first_box_parses_with_the_option(browser, page_server):
    click_punctuation_first_and_parse(browser, page_server, ticked_before=False)


@pytest.fixture(scope="module")
def first_page_server(page_checkpoint, tmp_path_factory):
    """The page's model with punctuation first as its default."""
    release = load_release(page_checkpoint)
    path = tmp_path_factory.mktemp("first-checkpoint") / "first.safetensors"
    save_release(path, release.model, release.vocab, {**release.metadata, "default_punctuation_first": True},
                 dtype=torch.float32)
    port = free_port()
    log = tmp_path_factory.mktemp("first-server") / "server.log"
    command = [sys.executable, "-m", "onlstm", "serve", "--port", str(port), "--checkpoint", str(path)]
    with running_server(command, port, log) as base:
        yield base


def test_the_punctuation_first_box_shows_the_models_default(browser, first_page_server):
    """Ticked when the model splits at punctuation first by default; unticking parses without it."""
    click_punctuation_first_and_parse(browser, first_page_server, ticked_before=True)


def test_the_prior_box_shows_the_default_and_parses_with_the_chosen_strength(browser, page_server):
    text = "The company said it expects earnings to rise sharply next year."
    open_page(browser, page_server)
    box = browser.find_element(by().ID, "prior")
    assert box.get_attribute("value") == "0.3"  # the model's default, from /model
    for strength in ("50", "-50", "0.3"):
        box.clear()
        box.send_keys(strength)
        submit(browser, text)
        expected = api_parse(page_server, text=text, right_branching_bias=float(strength))["results"][0]["tree"]
        wait(browser, lambda driver, tree=expected: [element.get_attribute("textContent") for element
                                                   in driver.find_elements(by().CSS_SELECTOR, "#results pre.ptb")] == [tree])
    assert api_parse(page_server, text=text)["results"][0]["tree"] == expected  # 0.3 is the default


def test_the_ptb_strings_copy_and_download(browser, page_server, downloads):
    text = "The cat sat on the mat! A dog chased the cat into the garden!"
    expected = [result["tree"] for result in api_parse(page_server, text=text)["results"]]
    cards = parse_in_page(browser, page_server, text, 2)
    browser.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": page_server, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    read_clipboard = ("const done = arguments[arguments.length - 1];"
                      " navigator.clipboard.readText().then(done, (error) => done('error: ' + error));")
    button = cards[1].find_element(by().CSS_SELECTOR, ".card-actions button.copy")
    assert button.text == "Copy PTB"
    button.click()
    wait(browser, lambda driver: button.text == "Copied", timeout=5)
    assert browser.execute_async_script(read_clipboard) == expected[1]
    browser.find_element(by().XPATH, "//button[text()='Copy all trees']").click()
    wait(browser, lambda driver: browser.execute_async_script(read_clipboard) == "\n".join(expected), timeout=5)

    for old in downloads.glob("*"):
        old.unlink()
    browser.find_element(by().ID, "download-mrg").click()
    target = downloads / "trees.mrg"
    deadline = time.monotonic() + 10
    while not (target.exists() and target.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert target.read_text(encoding="utf-8").splitlines() == expected
    # the bracketed strings are also on the cards, readable and selectable
    assert [card.find_element(by().CSS_SELECTOR, "pre.ptb").get_attribute("textContent") for card in cards] == expected


def test_all_layers_trees_side_by_side(browser, page_server, shots):
    text = "Stocks fell in heavy trading on wall street! The company said it expects earnings to rise!"
    per_layer = [api_parse(page_server, text=text, layer=layer)["results"] for layer in range(3)]
    cards = parse_in_page(browser, page_server, text, 2, all_layers=True)
    wait(browser, lambda driver: len(driver.find_elements(by().CSS_SELECTOR, ".layer-panel svg.parse-tree")) == 6)
    for index, card in enumerate(cards):
        panels = card.find_elements(by().CSS_SELECTOR, ".layer-panel")
        assert [panel.get_attribute("data-layer") for panel in panels] == ["0", "1", "2"]
        tokens = per_layer[0][index]["tokens"]
        for layer, panel in enumerate(panels):
            caption = panel.find_element(by().TAG_NAME, "figcaption").text
            assert caption.startswith(f"layer {layer} · dev F1 {DEV_F1_PER_LAYER[layer]:.1f}"), caption
            assert leaves(panel, "") == tokens
            # each panel draws that layer's own tree: its constituents are the API's spans for the layer
            drawn = {circle.get_attribute("textContent") for circle in panel.find_elements(by().CSS_SELECTOR, "circle.node")}
            spans = per_layer[layer][index]["spans"]
            assert drawn == {" ".join(tokens[start:end]) for start, end in spans}
            assert rect(browser, panel.find_element(by().TAG_NAME, "svg"))["width"] <= rect(browser, panel)["width"]
        # side by side: one row, left to right, inside the card
        boxes = [rect(browser, panel) for panel in panels]
        assert len({round(box["top"]) for box in boxes}) == 1, boxes
        assert all(left["right"] <= right["left"] for left, right in zip(boxes, boxes[1:])), boxes
        assert boxes[-1]["right"] <= rect(browser, card)["right"]
        # the panels' words line up, whatever the height of each tree
        first_words = [rect(browser, panel.find_element(by().CSS_SELECTOR, "text.leaf")) for panel in panels]
        assert max(word["bottom"] for word in first_words) - min(word["bottom"] for word in first_words) < 1.5
        assert "shown" in panels[1].get_attribute("class")  # the default layer, also drawn above
    snapshot(browser, cards[0], shots / "all-layers.png")


def test_cards_show_unknown_word_share_and_warnings(browser, page_server, shots):
    text = "Zorblax quinfed the vlorpish grendelwarts! The cat sat on the mat!"
    results = api_parse(page_server, text=text)["results"]
    if "unk_share" not in results[0]:
        pytest.skip("this service does not return unk_share yet (issue 12 item 4)")
    cards = parse_in_page(browser, page_server, text, 2)
    for card, result in zip(cards, results):
        share = card.find_element(by().CSS_SELECTOR, ".unk-share b").text
        assert share == f"{math.floor(result['unk_share'] * 100 + 0.5)}%"  # as JavaScript's Math.round
        shown = [item.text for item in card.find_elements(by().CSS_SELECTOR, ".warnings li")]
        assert shown == result["warnings"]
    assert results[0]["unk_share"] > results[1]["unk_share"]
    snapshot(browser, cards[0], shots / "unknown-words.png")


def test_plurals_keyboard_and_favicon(browser, page_server):
    from selenium.webdriver.common.keys import Keys

    open_page(browser, page_server)
    box = browser.find_element(by().ID, "text")
    box.clear()
    box.send_keys("Hello")
    box.send_keys(Keys.CONTROL, Keys.ENTER)  # parses without the mouse
    (card,) = wait(browser, lambda driver: driver.find_elements(by().CSS_SELECTOR, "#results article.sentence"))
    assert card.find_element(by().CSS_SELECTOR, ".token-count").text == "1 token"
    assert browser.find_element(by().CSS_SELECTOR, ".results-bar .summary").text == "1 sentence · 1 token"
    assert "3 layers" in browser.find_element(by().ID, "model-info").text
    # the favicon is linked, served as SVG and drawn by the browser
    icon = browser.find_element(by().CSS_SELECTOR, "link[rel='icon']").get_attribute("href")
    response = httpx.get(icon, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
    logo = browser.find_element(by().CSS_SELECTOR, "h1 img")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", logo) > 0
    # every control has a name a screen reader can say
    unnamed = browser.execute_script(
        "return [...document.querySelectorAll('button, select, textarea, input')].filter((element) =>"
        " !(element.getAttribute('aria-label') || element.labels?.length || element.textContent.trim()))"
        ".map((element) => element.outerHTML);")
    assert unnamed == []


def test_an_old_error_goes_when_the_form_is_edited_or_the_browser_refuses_a_submit(browser, page_server):
    open_page(browser, page_server)
    error = browser.find_element(by().ID, "error")
    submit(browser, "Words " + "word " * 299)
    wait(browser, lambda driver: error.is_displayed())
    # the box emptied without an input event: `required` stops the submit in the browser itself
    box = browser.find_element(by().ID, "text")
    browser.execute_script("arguments[0].value = '';", box)
    assert error.is_displayed()
    browser.find_element(by().ID, "parse-button").click()
    assert browser.execute_script("return arguments[0].validity.valueMissing", box)
    wait(browser, lambda driver: not error.is_displayed(), timeout=5)
    # an edit of the text: the error was about the text sent before
    submit(browser, "Words " + "word " * 299)
    wait(browser, lambda driver: error.is_displayed())
    box.send_keys(" more")
    wait(browser, lambda driver: not error.is_displayed(), timeout=5)


def test_a_model_that_failed_to_load_is_an_error_and_parse_is_off(browser, tmp_path, shots):
    from selenium.webdriver.common.keys import Keys

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint at all")
    server = ServerProcess(broken, tmp_path / "server.log")
    try:
        server.wait_answering()
        assert httpx.get(f"{server.base}/ready", timeout=10).json()["status"] == "failed"
        browser.get(f"{server.base}/")
        banner = wait(browser, lambda driver: driver.find_element(by().ID, "model-error").is_displayed()
                      and driver.find_element(by().ID, "model-error"))
        assert banner.text.startswith("The model could not be loaded, so nothing can be parsed: "), banner.text
        assert banner.get_attribute("role") == "alert"
        assert rect(browser, banner)["bottom"] <= rect(browser, browser.find_element(by().ID, "text"))["top"]
        button = browser.find_element(by().ID, "parse-button")
        assert not button.is_enabled()
        # nor does the keyboard parse: no request, no results, no second error
        browser.find_element(by().ID, "text").send_keys(Keys.CONTROL, Keys.ENTER)
        time.sleep(0.5)
        assert browser.find_elements(by().CSS_SELECTOR, "#results article") == []
        assert not browser.find_element(by().ID, "error").is_displayed()
        browser.save_screenshot(str(shots / "model-failed.png"))
    finally:
        server.kill()


def test_while_the_model_loads_the_page_says_so_and_parse_waits(browser, page_server):
    # the page's first GET /ready answers "loading", as a real one does while the model loads
    script = """(() => {
      const realFetch = window.fetch.bind(window);
      let loadingAnswers = 1;
      window.fetch = (resource, options) => {
        if (String(resource).endsWith("/ready") && loadingAnswers-- > 0) {
          return Promise.resolve(new Response('{"status": "loading"}',
            {status: 503, headers: {"Content-Type": "application/json"}}));
        }
        return realFetch(resource, options);
      };
    })();"""
    added = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})
    try:
        browser.get(f"{page_server}/")
        info = browser.find_element(by().ID, "model-info")
        wait(browser, lambda driver: info.text == "The model is loading…", timeout=5)
        assert not browser.find_element(by().ID, "parse-button").is_enabled()
        assert not browser.find_element(by().ID, "model-error").is_displayed()
        # the page asks again, and the model is there
        wait(browser, lambda driver: "version" in info.text, timeout=15)
        assert browser.find_element(by().ID, "parse-button").is_enabled()
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]})


def test_distance_bars_start_at_zero_on_an_axis_with_ticks(browser, page_server, shots):
    sentence = "The company said it expects earnings to rise sharply next year."
    (expected,) = api_parse(page_server, text=sentence)["results"]
    (card,) = parse_in_page(browser, page_server, sentence, 1)
    figure = card.find_element(by().CSS_SELECTOR, ".main-tree svg")
    labels = [label.get_attribute("textContent") for label in figure.find_elements(by().CSS_SELECTOR, ".tick-label")]
    assert labels == ["0", "0.25", "0.5", "0.75", "1"]
    ticks = figure.find_elements(by().CSS_SELECTOR, "line.tick")
    zero, one = rect(browser, ticks[0])["top"], rect(browser, ticks[-1])["top"]
    assert zero - one > 50, (zero, one)  # the axis is drawn tall enough to read
    bars = figure.find_elements(by().CSS_SELECTOR, "rect.bar")
    values = [float(bar.get_attribute("data-value")) for bar in bars]
    assert values == pytest.approx(expected["distances"])
    # every bar within the axis stands from 0 to its value: 0.44 is drawn at 44% of the axis
    for bar, value in zip(bars, values):
        if "top" in bar.get_attribute("class"):
            assert value > 1
            continue
        drawn = rect(browser, bar)
        assert drawn["bottom"] == pytest.approx(zero, abs=1)
        assert drawn["top"] == pytest.approx(zero - value * (zero - one), abs=1.5), (value, drawn, zero, one)
    # the tick labels sit left of the first word's column
    first_word = rect(browser, figure.find_element(by().CSS_SELECTOR, "text.leaf"))
    assert all(rect(browser, label)["right"] <= first_word["left"] + 4
               for label in figure.find_elements(by().CSS_SELECTOR, ".tick-label"))
    snapshot(browser, card, shots / "distance-axis.png")


# --- languages: the selector, and Chinese drawn in real glyphs ------------------------------------------


@pytest.fixture(scope="module")
def languages_server(page_checkpoint, tmp_path_factory):
    """The page's model as English and, with its card's language changed, as Chinese."""
    from onlstm.models.checkpoint import load_release

    folder = tmp_path_factory.mktemp("languages-server")
    release = load_release(page_checkpoint)
    chinese = folder / "tiny-page-zh.safetensors"
    save_release(chinese, release.model, release.vocab,
                 {**release.metadata, "name": "onlstm-tiny-page-zh", "language": "zh"}, dtype=torch.float32)
    port = free_port()
    command = [sys.executable, "-m", "onlstm", "serve", "--port", str(port),
               "--languages", f"en={page_checkpoint},zh={chinese}"]
    with running_server(command, port, folder / "server.log") as base:
        yield base


# Each glyph drawn alone on a canvas in the leaves' own font: real glyphs are inked and differ from each other
# and from U+E000 (a private-use code point no font draws: the missing-glyph box, "tofu", or nothing); the
# boxes drawn for characters without a font would all be alike.
GLYPHS_SCRIPT = """
const leaf = arguments[0];
const style = getComputedStyle(leaf);
const font = `${style.fontSize} ${style.fontFamily}`;
function ink(text) {
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 48;
  const context = canvas.getContext("2d");
  context.font = font; context.textBaseline = "top"; context.fillStyle = "#000";
  context.fillText(text, 8, 8);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const cells = [];
  for (let index = 3; index < data.length; index += 4) cells.push(data[index] > 100 ? 1 : 0);
  return cells;
}
const shapes = ["北", "京", "\\uE000"].map(ink);
const inked = shapes.map((cells) => cells.reduce((sum, cell) => sum + cell, 0));
const differ = (one, other) => one.some((cell, index) => cell !== other[index]);
return {font, fontSize: parseFloat(style.fontSize), inked, distinct: differ(shapes[0], shapes[1]),
        notTofu: differ(shapes[0], shapes[2]) && differ(shapes[1], shapes[2]),
        widths: [...document.querySelectorAll("#results .main-tree text.leaf")].map((text) => text.getBBox().width)};
"""


def test_the_language_selector_parses_chinese_and_draws_it_in_real_glyphs(browser, languages_server, shots):
    open_page(browser, languages_server)
    select = browser.find_element(by().ID, "language")
    wait(browser, lambda driver: len(select.find_elements(by().CSS_SELECTOR, "option")) == 2)
    labels = {option.get_attribute("value"): option.text for option in select.find_elements(by().TAG_NAME, "option")}
    assert labels == {"en": "English (en) (non-commercial)", "zh": "Chinese (zh) (non-commercial)"}
    english_terms = browser.find_element(by().ID, "language-terms")
    assert select.get_attribute("value") == "en" and "Penn Treebank" in english_terms.text
    from selenium.webdriver.support.ui import Select

    Select(select).select_by_value("zh")
    info = browser.find_element(by().ID, "model-info")
    wait(browser, lambda driver: "onlstm-tiny-page-zh" in info.text)
    terms = browser.find_element(by().ID, "language-terms")
    assert terms.is_displayed() and "non-commercial" in terms.text and "CC BY-NC-SA" in terms.text
    # the English sample gave way to the Chinese one, which is parsed as Chinese
    assert browser.find_element(by().ID, "text").get_attribute("value") == "北京是中国的首都。"
    browser.find_element(by().ID, "parse-button").click()
    wait(browser, lambda driver: len(driver.find_elements(by().CSS_SELECTOR, "#results .main-tree svg.parse-tree")) == 1)
    (card,) = browser.find_elements(by().CSS_SELECTOR, "#results article.sentence")
    assert leaves(card) == ["北京", "是", "中国", "的", "首都", "。"]
    glyphs = browser.execute_script(GLYPHS_SCRIPT, card.find_element(by().CSS_SELECTOR, ".main-tree text.leaf"))
    assert min(glyphs["inked"][:2]) > 20 and glyphs["distinct"] and glyphs["notTofu"], glyphs
    # CJK characters are one em wide each: 北京 two of them, every word drawn with a width
    assert glyphs["widths"][0] == pytest.approx(2 * glyphs["fontSize"], rel=0.15), glyphs
    assert all(width > 0 for width in glyphs["widths"]), glyphs
    snapshot(browser, card, shots / "chinese-tree.png")
