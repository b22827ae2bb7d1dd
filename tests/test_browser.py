"""The chat in a real browser (Debian's chromium driven by Playwright) over the real pipeline.

Screenshots of the main states go to tests/artifacts/; the Kallas answer with its evidence panel also
becomes docs/screenshot.png. The tests share one server (module fixture) and run in file order: the
upload test leaves the index as it found it, the hostile document stays.
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
WAIT_MS = 60_000
SECOND_QUESTION = "Who is Finland's Defense Minister?"
SECOND_ANSWER = "Antti Häkkänen"

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


@pytest.fixture(scope="module")
def context(browser: sync_api.Browser) -> Iterator[sync_api.BrowserContext]:
    """One context for the desktop tests, so the app's scripts load from cache; each test has its own
    page, hence its own Gradio session and conversation."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    yield context
    context.close()


def open_app(context: sync_api.BrowserContext, url: str) -> sync_api.Page:
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    expect(page.locator("#question textarea")).to_be_visible()
    return page


@pytest.fixture
def page(context: sync_api.BrowserContext, real_server: str) -> Iterator[sync_api.Page]:  # noqa: F811
    page = open_app(context, real_server)
    yield page
    page.close()


def ask(page: sync_api.Page, question: str) -> sync_api.Locator:
    """Type a question like a user and return the finished reply bubble."""
    replies = page.locator('#chatbot [data-testid="bot"]')
    before = replies.count()
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    reply = replies.nth(before)
    expect(reply).to_contain_text(REPLY_DONE, timeout=WAIT_MS)
    expect(page.locator("#evidence .qa-ev")).to_have_attribute("data-answer", str(before + 1))
    return reply


def short_answer(reply: sync_api.Locator) -> str:
    """The bold short answer, or the quote when the quote is the answer."""
    strong = reply.locator(".md > p:first-child > strong, .md > p:first-child:has(.qa-read-as) + p > strong")
    return strong.inner_text().strip() if strong.count() else reply.locator("blockquote").inner_text().strip()


def choose(page: sync_api.Page, dropdown: str, option: str) -> None:
    """Pick the option containing `option` in a Gradio dropdown (elem_id `dropdown`)."""
    page.locator(f"#{dropdown} input").click()
    page.get_by_role("option", name=option).first.click()
    page.keyboard.press("Escape")


def upload(page: sync_api.Page, *paths: Path) -> None:
    """Upload like a user and wait for each file's line in the finished report (its name in bold:
    the progress shown meanwhile, "Indexing: <name>", names it too, before it is indexed)."""
    page.locator("#upload input[type=file]").set_input_files([str(p) for p in paths])
    for path in paths:
        name = path.name.replace(" ", "_")
        expect(page.locator("#upload-report strong", has_text=name).first).to_be_visible(timeout=WAIT_MS)


def screenshot(page: sync_api.Page, name: str, scroll_chat_up: bool = False, full_page: bool = False) -> Path:
    """Save a screenshot; `scroll_chat_up` shows the question above its answer.

    Waits for the chat's own autoscroll to settle first, or it scrolls back down.
    """
    if scroll_chat_up:
        page.wait_for_timeout(700)
        page.locator("#chatbot").hover()
        page.mouse.wheel(0, -5000)
        page.wait_for_timeout(300)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path


def test_kallas_answer_card_evidence_and_document(page: sync_api.Page) -> None:
    reply = ask(page, "What did Kallas say?")
    # The answer card: short answer, quote, confidence with its score on hover, numbered citation.
    expect(reply.locator("blockquote")).to_contain_text(KALLAS_QUOTE)
    answer = short_answer(reply)
    assert answer == KALLAS_QUOTE
    expect(reply.locator("blockquote mark")).to_have_text(answer)
    confidence = reply.locator(".qa-conf")
    expect(confidence).to_have_text(re.compile(r"Confidence: (high|medium|low)"))
    expect(confidence).to_have_attribute("title", re.compile(r"confidence score [01]\.\d\d"))
    cite = reply.locator("a.qa-cite")
    expect(cite).to_have_text("[1]")
    expect(cite).to_have_attribute("href", "#ev-1-1")
    expect(reply).to_contain_text(SEED_FILE)
    # The copy button Gradio puts on each answer.
    expect(page.locator('#chatbot [data-testid="bot"] ~ * [aria-label="Copy message"], '
                        '#chatbot [aria-label="Copy message"]').last).to_be_visible()

    # The evidence panel: the cited passage first, the short answer marked (by offsets), its score.
    card = page.locator("#evidence #ev-1-1")
    expect(card).to_contain_text(SEED_FILE)
    expect(card).to_contain_text(re.compile(r"retrieval score \d\.\d\d"))
    expect(card.locator("mark")).to_have_text(answer)
    expect(card.locator(".qa-quote")).to_contain_text(KALLAS_QUOTE)
    assert page.locator("#evidence .qa-card").count() >= 2
    screenshot(page, "kallas-answer.png", scroll_chat_up=True)
    shutil.copyfile(ARTIFACTS / "kallas-answer.png", ROOT / "docs" / "screenshot.png")

    # The whole document, scrolled to the highlight.
    card.locator(".qa-open").click()
    focus = page.locator("#doc-viewer #doc-focus")
    expect(focus.locator("mark")).to_have_text(answer)
    expect(page.locator("#doc-viewer")).to_contain_text("whole text")
    expect(focus).to_be_in_viewport()
    screenshot(page, "document-viewer.png")
    page.locator("#doc-viewer .qa-close").click()
    expect(page.locator("#doc-viewer .qa-doc")).to_have_count(0)


def test_older_answers_keep_their_own_sources(page: sync_api.Page, real_server: str) -> None:  # noqa: F811
    first = ask(page, "What did Kallas say?")
    ask(page, SECOND_QUESTION)
    # Another browser tab is another session: its conversation is empty.
    other = open_app(page.context, real_server)
    expect(other.locator("#evidence")).to_contain_text("Ask a question")
    assert other.locator('#chatbot [data-testid="bot"]').count() == 0
    other.close()
    evidence = page.locator("#evidence")
    expect(evidence.locator(".qa-ev-head")).to_contain_text(SECOND_QUESTION)
    expect(evidence.locator("#ev-2-1 mark")).to_have_text(SECOND_ANSWER)

    # Clicking the first answer's citation brings back the first answer's sources.
    first.locator("a.qa-cite").first.click()
    expect(evidence.locator(".qa-ev")).to_have_attribute("data-answer", "1")
    expect(evidence.locator(".qa-ev-head")).to_contain_text("What did Kallas say?")
    expect(evidence.locator("#ev-1-1 mark")).to_have_text(KALLAS_QUOTE)
    expect(page.locator("#answer-picker input")).to_have_value(re.compile("^1. What did Kallas say"))
    # ... and they still open in the document viewer.
    evidence.locator("#ev-1-1 .qa-open").click()
    expect(page.locator("#doc-viewer #doc-focus mark")).to_have_text(KALLAS_QUOTE)

    # The picker switches back to the newer answer.
    choose(page, "answer-picker", "2. " + SECOND_QUESTION)
    expect(evidence.locator(".qa-ev")).to_have_attribute("data-answer", "2")
    expect(evidence.locator("#ev-2-1 mark")).to_have_text(SECOND_ANSWER)
    screenshot(page, "two-answers.png")

    # The chatbot's own clear button starts a fresh conversation: numbering and sources start over.
    page.locator('#chatbot button[aria-label="Clear"]').click()
    expect(evidence).to_contain_text("Ask a question")
    ask(page, SECOND_QUESTION)
    expect(evidence.locator("#ev-1-1 mark")).to_have_text(SECOND_ANSWER)


def test_upload_filter_and_remove_a_pdf(page: sync_api.Page, tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "Zephyr Review.pdf", PDF_PAGES)
    fake_pdf = tmp_path / "notes.pdf"
    fake_pdf.write_text("<html>this is not a PDF</html>")
    upload(page, pdf, fake_pdf)
    report = page.locator("#upload-report")
    expect(report).to_contain_text("Zephyr_Review.pdf — added")
    expect(report).to_contain_text("notes.pdf — refused: not a PDF")
    table = page.locator("#documents")
    expect(table).to_contain_text("Zephyr_Review.pdf")
    page.locator("#documents-panel").scroll_into_view_if_needed()
    screenshot(page, "uploaded.png")

    reply = ask(page, PDF_QUESTION)
    expect(reply).to_contain_text(PDF_FACT)
    expect(reply).to_contain_text("Zephyr_Review.pdf, p. 2")
    card = page.locator("#evidence #ev-1-1")
    expect(card).to_contain_text("Zephyr_Review.pdf, p. 2")
    expect(card.locator("mark")).to_have_text(short_answer(reply))
    card.locator(".qa-open").click()
    expect(page.locator("#doc-viewer")).to_contain_text("page 2 of 2")
    expect(page.locator("#doc-viewer #doc-focus")).to_contain_text(PDF_FACT)
    screenshot(page, "pdf-answer.png", scroll_chat_up=True)
    check_page_view(page)

    # Asking only within the PDF: the Kallas question is no longer answerable.
    choose(page, "doc-filter", "Zephyr_Review.pdf")
    limited = ask(page, "What did Kallas say?")
    expect(limited.locator(".abstained")).to_have_text("Not found in the documents.")
    expect(limited).to_contain_text("Searched only in:")

    # Removing takes two steps: choose, then confirm (cancel leaves it).
    choose(page, "remove-choice", "Zephyr_Review.pdf")
    page.locator("#remove").click()
    expect(page.locator("#confirm-row")).to_contain_text("Zephyr_Review.pdf")
    page.locator("#cancel-remove").click()
    expect(page.locator("#confirm-row")).to_be_hidden()
    expect(table).to_contain_text("Zephyr_Review.pdf")
    page.locator("#remove").click()
    page.locator("#confirm-remove").click()
    expect(page.locator("#remove-report")).to_contain_text("Removed Zephyr_Review.pdf")
    expect(table).not_to_contain_text("Zephyr_Review.pdf")
    expect(page.locator("#doc-filter")).not_to_contain_text("Zephyr_Review.pdf")  # the filter lets go of it
    after = ask(page, PDF_QUESTION)
    expect(after).not_to_contain_text("Zephyr_Review.pdf")
    expect(after).not_to_contain_text(PDF_FACT)


def check_page_view(page: sync_api.Page) -> None:
    """The open PDF passage's page as printed: drawn on request, the quote and answer boxed on the
    image; on a phone-width screen, zoomed so the quote is in view."""
    page.locator("#doc-viewer .qa-page-open").click()
    view = page.locator("#doc-viewer .qa-page-view")
    expect(view).to_contain_text("Page 2 of 2 as printed · the quote boxed")
    image = view.locator("img")
    expect(image).to_be_visible()
    page.wait_for_function("document.querySelector('#doc-viewer .qa-page-view img').complete")
    assert image.evaluate("img => img.naturalWidth") >= 1000
    quote = view.locator(".qa-box-quote")
    expect(quote.first).to_be_visible()
    expect(view.locator(".qa-box-answer")).to_have_count(1)
    frame, box = image.bounding_box(), quote.first.bounding_box()
    assert frame and box and frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1
    assert frame["y"] <= box["y"] and box["y"] + box["height"] <= frame["y"] + frame["height"] + 1
    view.scroll_into_view_if_needed()
    screenshot(page, "pdf-page-view.png")

    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.locator("#doc-viewer .qa-close").click()
        page.locator("#evidence #ev-1-1 .qa-open").click()
        page.locator("#doc-viewer .qa-page-open").click()
        expect(view.locator(".qa-box-quote").first).to_be_visible()
        page.wait_for_function("document.querySelector('#doc-viewer .qa-page-view img').complete")
        scroller = view.locator(".qa-page-scroll")
        assert image.evaluate("img => img.clientWidth") > 2 * scroller.evaluate("s => s.clientWidth")  # zoomed
        expect(view.locator(".qa-box-quote").first).to_be_in_viewport()
        screenshot(page, "pdf-page-view-phone.png")
    finally:
        page.set_viewport_size({"width": 1400, "height": 1100})


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract missing: apt-get install tesseract-ocr")
def test_a_scanned_page_answers_says_so_and_boxes_the_quote_on_the_scan(page: sync_api.Page, tmp_path: Path, make_scan) -> None:
    scan = make_scan(tmp_path / "harbour-scan.png", [
        "Harbour report\nThe Orvik ferry carried 48,210 passengers in 2023.\nIts busiest month was July."])
    upload(page, scan)
    expect(page.locator("#upload-report")).to_contain_text("harbour-scan.png — added")
    reply = ask(page, "How many passengers did the Orvik ferry carry in 2023?")
    expect(reply).to_contain_text("48,210")
    expect(reply).to_contain_text("read by OCR")
    expect(reply).to_contain_text("Read by OCR from a scanned page")
    page.locator("#evidence #ev-1-1 .qa-open").click()
    page.locator("#doc-viewer .qa-page-open").click()
    view = page.locator("#doc-viewer .qa-page-view")
    expect(view).to_contain_text("Page 1 of 1 as printed · the quote boxed")
    page.wait_for_function("document.querySelector('#doc-viewer .qa-page-view img').complete")
    image, quote = view.locator("img"), view.locator(".qa-box-quote")
    expect(quote.first).to_be_visible()
    frame, box = image.bounding_box(), quote.first.bounding_box()
    assert frame and box and frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1
    assert box["y"] < frame["y"] + frame["height"] / 3  # the sentence stands near the top of the scan
    view.scroll_into_view_if_needed()
    screenshot(page, "scan-page-view.png")
    page.locator("#doc-viewer .qa-close").click()
    choose(page, "remove-choice", "harbour-scan.png")
    page.locator("#remove").click()
    page.locator("#confirm-remove").click()
    expect(page.locator("#remove-report")).to_contain_text("Removed harbour-scan.png")


def test_hostile_document_shows_as_literal_text(page: sync_api.Page, tmp_path: Path) -> None:
    img = '<img src=x onerror="window.__pwned=1">'
    script = "<script>window.__pwned=2</script>"
    link = "[click me](javascript:window.__pwned=3)"
    template = "${window.__pwned=4} {{constructor}}"
    hostile = tmp_path / "hostile.txt"
    hostile.write_text(
        f"{script} Granary bulletin\nThe Orion depot stores 900 tonnes of winter grain. {img} {script} {link} "
        f"{template}\n"
    )
    upload(page, hostile)
    expect(page.locator("#documents")).to_contain_text(f"{script} Granary bulletin")
    reply = ask(page, "How much grain does the Orion depot store?")
    expect(reply).to_contain_text("900 tonnes")
    evidence = page.locator("#evidence")
    for literal in (img, script, link, template):
        expect(evidence).to_contain_text(literal)
    evidence.locator("#ev-1-1 .qa-open").click()
    expect(page.locator("#doc-viewer")).to_contain_text(template)
    for area in ("#chatbot", "#evidence", "#doc-viewer"):
        assert page.locator(area).locator("script, img[src='x'], a[href^='javascript']").count() == 0
    assert page.evaluate("window.__pwned") is None
    screenshot(page, "hostile-document.png", scroll_chat_up=True)


def test_off_topic_question_abstains_visibly(page: sync_api.Page) -> None:
    reply = ask(page, "Who won the 1998 football World Cup final?")
    expect(reply.locator(".abstained")).to_have_text("Not found in the documents.")
    expect(reply).to_contain_text("Closest passages looked at")
    assert reply.locator("mark").count() == 0
    evidence = page.locator("#evidence")
    expect(evidence.locator(".qa-ev-head")).to_contain_text("Not found in the documents; closest passages looked at")
    assert evidence.locator(".qa-card").count() >= 1 and evidence.locator("mark").count() == 0
    screenshot(page, "abstention.png", scroll_chat_up=True)

    # The examples come from the documents and are answered (one click asks).
    example = page.locator("#examples button").first
    asked = example.inner_text().strip()
    assert asked.endswith("?")
    example.click()
    reply = page.locator('#chatbot [data-testid="bot"]').nth(1)
    expect(reply).to_contain_text("Sources", timeout=WAIT_MS)
    expect(page.locator('#chatbot [data-testid="user"]').nth(1)).to_have_text(asked)


def test_strict_box_refuses_an_in_topic_question_the_briefing_does_not_answer(page: sync_api.Page) -> None:
    """The default answers this one with Häkkänen's sentence (confidence 0.15, above its 0.11 bar);
    strict (0.3) refuses it, and still answers a question the briefing does answer (0.77)."""
    page.locator("#strict input[type=checkbox]").check()
    reply = ask(page, "Who is Germany's defence minister?")
    expect(reply.locator(".abstained")).to_have_text("Not found in the documents.")
    reply = ask(page, "Where is the Ukraine Defense Contact Group set to meet?")
    expect(reply.locator("blockquote")).to_contain_text("NATO headquarters in Brussels")


def test_phone_width(browser: sync_api.Browser, real_server: str) -> None:  # noqa: F811
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = open_app(phone, real_server)
    try:
        width = 390
        for selector in ("#question textarea", "#ask"):
            expect(page.locator(selector)).to_be_in_viewport()
        reply = ask(page, "What did Kallas say?")
        expect(reply.locator("blockquote mark")).to_have_text(KALLAS_QUOTE)
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing off to the side
        for selector in ("#chatbot", "#question", "#ask", "#evidence", "#doc-filter", "#upload", "#documents", "#remove"):
            box = page.locator(selector).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (selector, box)
        screenshot(page, "phone.png", scroll_chat_up=True)
        page.locator("#evidence #ev-1-1").scroll_into_view_if_needed()
        expect(page.locator("#evidence #ev-1-1 mark")).to_be_in_viewport()
        screenshot(page, "phone-evidence.png")
    finally:
        phone.close()


def test_follow_up_and_also_in_the_documents(page: sync_api.Page, real_server: str, tmp_path: Path) -> None:  # noqa: F811
    """Two documents state the same fact: the answer offers the other as "Also in the documents",
    which opens its own evidence; a follow-up is read in the conversation and answered from the
    document that answered before."""
    bulletin, history = tmp_path / "harbour-bulletin.txt", tmp_path / "coastal-history.txt"
    bulletin.write_text(
        "Harbour bulletin.\nThe Orvik lighthouse was rebuilt in 1911 by the engineer Marta Lindqvist. "
        "The harbour also got a new breakwater.\n"
    )
    history.write_text(
        "Coastal history.\nIn 1911 the engineer Marta Lindqvist rebuilt the Orvik lighthouse after the great storm. "
        "Fishing boats returned soon after.\n"
    )
    upload(page, bulletin, history)
    try:
        first = ask(page, "Who rebuilt the Orvik lighthouse?")
        assert short_answer(first) == "Marta Lindqvist"
        expect(first).to_contain_text("Also in the documents")
        sources = [first.locator("a.qa-cite").nth(i) for i in range(2)]
        expect(sources[1]).to_have_attribute("href", "#ev-1-2")
        answered_from = "coastal-history.txt" if "coastal-history.txt" in first.inner_text().split("Also in")[0] else (
            "harbour-bulletin.txt"
        )
        other = ({"coastal-history.txt", "harbour-bulletin.txt"} - {answered_from}).pop()

        # The alternative's citation opens its own evidence card, and that card its own document.
        sources[1].click()
        card = page.locator("#evidence #ev-1-2")
        expect(card.locator(".qa-badge")).to_have_text("also answers")
        expect(card).to_contain_text(other)
        expect(card.locator("mark")).to_have_text("Marta Lindqvist")
        card.locator(".qa-open").click()
        expect(page.locator("#doc-viewer")).to_contain_text(other)
        expect(page.locator("#doc-viewer #doc-focus")).to_contain_text("Marta Lindqvist")

        second = ask(page, "When was it rebuilt?")
        expect(second.locator(".qa-read-as")).to_contain_text("Read as: “When was the Orvik lighthouse rebuilt?”")
        assert short_answer(second) == "1911"
        expect(second).to_contain_text(answered_from)
        expect(page.locator("#evidence #ev-2-1")).to_contain_text(answered_from)
        page.wait_for_timeout(700)  # the chat scrolls to its newest answer: the follow-up and how it was read
        screenshot(page, "follow-up.png")
        shutil.copyfile(ARTIFACTS / "follow-up.png", ROOT / "docs" / "follow-up.png")
    finally:
        from gradio_client import Client

        client = Client(real_server, verbose=False)
        for name in (bulletin.name, history.name):
            client.predict(name, api_name="/remove_document")


def test_a_table_answer_shows_the_cell_in_its_row_under_the_column_headers(page: sync_api.Page, tmp_path: Path) -> None:
    """A Markdown pipe table: asked for a row's value in a column, the answer card shows that row
    under the table's column headers, the cell marked, and the caption above."""
    checks = tmp_path / "state-checks.md"
    checks.write_text(
        "# Background checks by state\n\nThe bureau counts the firearm background checks run in each state.\n\n"
        "Background checks by state, 2023\n\n"
        "| State | Handgun | Long gun | Permit |\n| --- | --- | --- | --- |\n"
        "| Texas | 56,941 | 21,550 | 51,670 |\n| Ohio | 31,208 | 17,402 | 9,815 |\n| Maine | 4,117 | 6,390 | 212 |\n",
        encoding="utf-8",
    )
    upload(page, checks)
    try:
        reply = ask(page, "How many long gun checks did Ohio run?")
        assert short_answer(reply) == "17,402"
        table = reply.locator("table.qa-table")
        expect(table.locator("caption")).to_have_text("Background checks by state, 2023")
        expect(table.locator("thead th")).to_have_text(["State", "Handgun", "Long gun", "Permit"])
        expect(table.locator("tbody td")).to_have_text(["Ohio", "31,208", "17,402", "9,815"])
        expect(table.locator("td.qa-cell mark")).to_have_text("17,402")
        column = table.locator("thead th").nth(2).bounding_box()
        cell = table.locator("td.qa-cell").bounding_box()
        assert column and cell and abs(column["x"] - cell["x"]) < 1  # the cell stands under its column
        expect(reply).to_contain_text("state-checks.md")
        expect(page.locator("#evidence #ev-1-1 mark")).to_have_text("17,402")
        screenshot(page, "table-answer.png", scroll_chat_up=True)
    finally:
        from gradio_client import Client

        Client(page.url, verbose=False).predict(checks.name, api_name="/remove_document")
