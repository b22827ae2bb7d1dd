"""The chat in a real browser (Debian's chromium driven by Playwright) over the real pipeline.

Screenshots of the main states go to tests/artifacts/; the Kallas answer also becomes docs/screenshot.png.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_chat import (  # noqa: F401 (real_server is a fixture used below)
    KALLAS_QUOTE,
    PDF_FACT,
    PDF_PAGES,
    PDF_QUESTION,
    ROOT,
    SEED_FILE,
    real_server,
    write_pdf,
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "tests" / "artifacts"
REPLY_DONE = re.compile("Sources|Not found in the documents")
WAIT_MS = 90_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing: apt-get install -y chromium"),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: sync_api.Browser, real_server: str) -> Iterator[sync_api.Page]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(real_server)
    expect(page.locator("#question textarea")).to_be_visible()
    yield page
    context.close()


def ask(page: sync_api.Page, question: str) -> sync_api.Locator:
    """Type a question like a user and return the finished reply bubble."""
    replies = page.locator('#chatbot [data-testid="bot"]')
    before = replies.count()
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    reply = replies.nth(before)
    expect(reply).to_contain_text(REPLY_DONE, timeout=WAIT_MS)
    return reply


def upload(page: sync_api.Page, path: Path) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(path))
    expect(page.locator("#upload-report")).to_contain_text(re.compile(r"added|already indexed"), timeout=WAIT_MS)


def screenshot(page: sync_api.Page, name: str, scroll_chat_up: bool = False) -> Path:
    """Save a screenshot; `scroll_chat_up` shows the question above its answer (each test has one exchange).

    Waits for the chat's own autoscroll to settle first, or it scrolls back down.
    """
    if scroll_chat_up:
        page.wait_for_timeout(1000)
        page.locator("#chatbot").hover()
        page.mouse.wheel(0, -5000)
        page.wait_for_timeout(500)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def test_kallas_answer_shows_quote_citation_and_highlight(page: sync_api.Page) -> None:
    reply = ask(page, "What did Kallas say?")
    expect(reply).to_contain_text(KALLAS_QUOTE)
    expect(reply).to_contain_text(SEED_FILE)
    expect(reply.locator("blockquote")).to_contain_text(KALLAS_QUOTE)
    marks = reply.locator("mark")
    expect(marks.first).to_be_visible()
    mark_text = marks.first.inner_text().strip()
    assert mark_text and mark_text in reply.locator("blockquote").inner_text()
    shot = screenshot(page, "kallas-answer.png", scroll_chat_up=True)
    (ROOT / "docs").mkdir(exist_ok=True)
    shutil.copyfile(shot, ROOT / "docs" / "screenshot.png")


def test_uploaded_pdf_is_listed_and_cited_with_its_page(page: sync_api.Page, tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "Zephyr Review.pdf", PDF_PAGES)
    upload(page, pdf)
    expect(page.locator("#upload-report")).to_contain_text("Zephyr_Review.pdf")
    expect(page.locator("#documents")).to_contain_text("Zephyr_Review.pdf")
    screenshot(page, "uploaded.png")
    reply = ask(page, PDF_QUESTION)
    expect(reply).to_contain_text(PDF_FACT)
    expect(reply).to_contain_text("Zephyr_Review.pdf, p. 2")
    screenshot(page, "pdf-answer.png", scroll_chat_up=True)


def test_hostile_document_shows_as_literal_text(page: sync_api.Page, tmp_path: Path) -> None:
    img = '<img src=x onerror="window.__pwned=1">'
    script = "<script>window.__pwned=2</script>"
    link = "[click me](javascript:window.__pwned=3)"
    hostile = tmp_path / "hostile.txt"
    hostile.write_text(
        f"{script} Granary bulletin\nThe Orion depot stores 900 tonnes of winter grain. {img} {script} {link}\n"
    )
    upload(page, hostile)
    expect(page.locator("#documents")).to_contain_text(f"{script} Granary bulletin")
    reply = ask(page, "How much grain does the Orion depot store?")
    expect(reply).to_contain_text("900 tonnes")
    for literal in (img, script, link):
        expect(reply).to_contain_text(literal)
    chat = page.locator("#chatbot")
    assert chat.locator("script, img[src='x'], a[href^='javascript']").count() == 0
    assert page.evaluate("window.__pwned") is None
    screenshot(page, "hostile-document.png", scroll_chat_up=True)


def test_off_topic_question_abstains_visibly(page: sync_api.Page) -> None:
    reply = ask(page, "Who won the 1998 football World Cup final?")
    expect(reply.locator(".abstained")).to_have_text("Not found in the documents.")
    expect(reply).to_contain_text("Closest passages looked at")
    assert reply.locator("mark").count() == 0
    screenshot(page, "abstention.png", scroll_chat_up=True)
