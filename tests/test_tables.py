"""Tables kept as tables: written into the text as pipe rows and read back (`qa.types`), found in
PDFs, Word files and web pages (`qa.tables`, `qa.markup`), and read by row and column
(`qa.read.tables`). The tables here are made from known cells, so every check is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.ingest import load_document
from qa.read.tables import read_tables
from qa.types import Document, table_text, tables_in

COLUMNS = ["State", "Handgun", "Long Gun", "Totals"]
ROWS = [["Alabama", "23,022", "22,650", "71,137"], ["Alaska", "3,062", "3,209", "7,095"],
        ["Texas", "56,941", "51,670", "171,417"], ["Utah", "3,062", "9,100", "12,162"]]


def load(path: Path) -> Document:
    return load_document(path, max_bytes=50 << 20, parse_timeout_s=60)


def cells(doc: Document, table_index: int = 0) -> list[list[str]]:
    table = doc.tables[table_index]
    return [[doc.text[a:b] for a, b in row.cells] for row in table.rows]


def document(text: str) -> Document:
    return Document(doc_id="d", title="Checks", source="checks.md", path="/checks.md", text=text)


def idf_over(doc: Document):
    """BM25's IDF with the document's paragraphs as the index's chunks (`qa.retrieve`'s formula)."""
    from qa.read.tables import _terms

    paragraphs = [set(_terms(p)) for p in doc.text.split("\n\n")]

    def idf(terms):
        df = np.array([sum(t in p for p in paragraphs) for t in terms], float)
        return np.log(1.0 + (len(paragraphs) - df + 0.5) / (df + 0.5))

    return idf


# --- the format -------------------------------------------------------------------------------


def test_a_table_is_written_as_pipe_rows_and_read_back_with_its_caption_headers_and_groups() -> None:
    text = "Some prose before.\n\n" + table_text(
        "Table 3. Checks by state", COLUMNS, [["Outlays:"], *ROWS[:2], ["A | B", "1", "", "2"]]
    ) + "\n\nProse after."
    (table,) = tables_in(text)
    assert table.caption == "Table 3. Checks by state"
    assert table.columns == tuple(COLUMNS)
    assert [[text[a:b] for a, b in row.cells] for row in table.rows] == [*ROWS[:2], ["A ¦ B", "1", "", "2"]]
    assert [row.group for row in table.rows] == ["Outlays:", "Outlays:", "Outlays:"]
    row = table.rows[0]
    assert text[row.start : row.end] == "| Alabama | 23,022 | 22,650 | 71,137 |"
    empty = table.rows[2].cells[2]
    assert empty[0] == empty[1]


def test_markdown_pipe_tables_are_tables_and_prose_with_a_bar_is_not(tmp_path: Path) -> None:
    path = tmp_path / "checks.md"
    path.write_text("# Checks\n\n| State | Handgun |\n|---|---:|\n| Texas | 56,941 |\n| Utah | 3,062 |\n\n"
                    "Either | or: a sentence with bars | is not a table.\n")
    doc = load(path)
    assert len(doc.tables) == 1
    assert cells(doc) == [["Texas", "56,941"], ["Utah", "3,062"]]
    assert doc.tables[0].caption == "Checks"


# --- finders ----------------------------------------------------------------------------------


def draw_table(path: Path, *, rotate: int = 0, leaders: bool = True, groups: bool = False) -> Path:
    """A statistical table as reports print them: no ruling lines, labels with dot leaders,
    figures right-aligned in their columns, the caption and a note above."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=letter)
    pdf.setPageRotation(rotate)
    pdf.setFont("Helvetica", 9)
    pdf.drawString(60, 740, "Table 3. Firearm Checks by State: November 2015")
    pdf.drawString(60, 726, "The checks run by each state in the month, by type of firearm.")
    rights = [260, 340, 420]
    if groups:
        pdf.drawCentredString(300, 706, "Pre-Pawn")
    pdf.drawString(60, 694, COLUMNS[0])
    for right, header in zip(rights, COLUMNS[1:]):
        pdf.drawRightString(right, 694, header)
    for i, row in enumerate(ROWS):
        y = 678 - 14 * i
        pdf.drawString(60, y, row[0] + (" " + ". " * 12 if leaders else ""))
        for right, value in zip(rights, row[1:]):
            pdf.drawRightString(right, y, value)
    pdf.drawString(60, 600, "Source: a made-up agency, for this test.")
    pdf.showPage()
    pdf.save()
    return path


def test_a_pdf_table_without_rules_is_found_with_headers_caption_and_cells(tmp_path: Path) -> None:
    doc = load(draw_table(tmp_path / "checks.pdf"))
    (table,) = doc.tables
    assert table.caption == "Table 3. Firearm Checks by State: November 2015"
    assert table.columns == tuple(COLUMNS)
    assert cells(doc) == ROWS
    assert doc.page_at(table.rows[0].start) == 1
    # The prose stays; pypdf's run of the rows' figures is not in the text twice.
    assert "The checks run by each state" in doc.text
    assert doc.text.count("56,941") == 1


def test_a_table_of_one_value_column_without_rules_is_found(tmp_path: Path) -> None:
    """Labels each with one figure, line after line ("Weekly $ 40.40"), under prose: a page whose
    lines never hold two figures is searched for tables too."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    periods = [("Weekly", "$ 40.40"), ("Biweekly", "80.80"), ("Semimonthly", "87.50"), ("Monthly", "175.00")]
    pdf = canvas.Canvas(str(tmp_path / "amounts.pdf"), pagesize=letter)
    pdf.setFont("Helvetica", 9)
    pdf.drawString(60, 750, "Add to the wages paid for the payroll period the amount shown in the chart below.")
    pdf.drawString(60, 730, "Amount to Add to Wages")
    pdf.drawString(60, 706, "Payroll Period")
    pdf.drawRightString(260, 706, "Add")
    for i, (label, value) in enumerate(periods):
        pdf.drawString(60, 692 - 14 * i, label)
        pdf.drawRightString(260, 692 - 14 * i, value)
    pdf.showPage()
    pdf.save()
    doc = load(tmp_path / "amounts.pdf")
    (table,) = doc.tables
    assert table.caption.endswith("Amount to Add to Wages")  # the title above the header
    assert table.columns == ("Payroll Period", "Add")
    assert cells(doc) == [list(row) for row in periods]


def test_a_page_is_searched_for_tables_by_its_runs_of_figures_not_a_figure_ending_a_line() -> None:
    from qa.tables import looks_tabular

    assert looks_tabular("Payroll Period Add\nWeekly $ 40.40\nBiweekly 80.80\nMonthly 175.00\n")
    assert not looks_tabular("The checks rose in 2015\nand fell again after the audit of\n2016 and the rules of 2017.\n"
                             "Prose ends here 2018\n")


def test_a_group_header_heads_every_column_under_it(tmp_path: Path) -> None:
    doc = load(draw_table(tmp_path / "checks.pdf", groups=True))
    assert doc.tables[0].columns[1:3] == ("Pre-Pawn Handgun", "Pre-Pawn Long Gun")
    assert doc.tables[0].columns[3] == "Totals"


def test_a_table_on_a_turned_page_is_read_as_well_as_it_can_be(tmp_path: Path) -> None:
    """Turned by /Rotate, the table is read sideways: its figures stay in the text. (A page printed
    turned, the public set's OMB table, is read as a table: bench/tables.py.)"""
    doc = load(draw_table(tmp_path / "turned.pdf", rotate=90))
    assert all(value in doc.text for row in ROWS for value in row)


def test_a_word_table_keeps_header_rows_merged_cells_and_tables_inside_content_controls(tmp_path: Path) -> None:
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    document.add_paragraph("Table 1-1. Roles and Responsibilities")
    table = document.add_table(rows=4, cols=3)
    for row, values in zip(table.rows, [["Group", "Role", "Responsibility"], ["PMO", "Director", "Approves plans"],
                                        ["", "Manager", "Runs reviews"], ["Agency", "Official", "Authorizes changes"]]):
        for cell, value in zip(row.cells, values):
            cell.text = value
    table.cell(1, 0).merge(table.cell(2, 0))  # "PMO" spans two rows
    table.cell(1, 0).text = "PMO"
    one_column = document.add_table(rows=1, cols=1)
    one_column.cell(0, 0).text = "A box of text laid out as a table."
    body = document.element.body
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    sdt = parse_xml(
        f'<w:sdt xmlns:w="{w}"><w:sdtContent><w:tbl><w:tr><w:tc><w:p><w:r><w:t>Version</w:t></w:r></w:p></w:tc>'
        f'<w:tc><w:p><w:r><w:t>Author</w:t></w:r></w:p></w:tc></w:tr><w:tr><w:tc><w:p><w:r><w:t>0.6</w:t></w:r></w:p>'
        f'</w:tc><w:tc><w:p><w:r><w:t>Steve Levitas</w:t></w:r></w:p></w:tc></w:tr></w:tbl></w:sdtContent></w:sdt>'
    )
    body.insert(len(body) - 1, sdt)  # before the section properties
    path = tmp_path / "roles.docx"
    document.save(str(path))
    doc = load(path)
    roles, versions = doc.tables
    assert roles.caption == "Table 1-1. Roles and Responsibilities"
    assert roles.columns == ("Group", "Role", "Responsibility")
    assert cells(doc)[:2] == [["PMO", "Director", "Approves plans"], ["PMO", "Manager", "Runs reviews"]]
    assert "A box of text laid out as a table." in doc.text and "| A box" not in doc.text
    assert versions.columns == ("Version", "Author")
    assert cells(doc, 1) == [["0.6", "Steve Levitas"]]


def test_a_web_page_table_keeps_its_th_headers_and_title_row(tmp_path: Path) -> None:
    path = tmp_path / "climate.html"
    path.write_text(
        "<html><head><title>Climate</title></head><body><article><h1>Climate of the islands</h1>"
        "<p>The table below lists climate normals for the warmest and coldest months in the main towns.</p>"
        "<table><tr><th colspan=3>Average daily maximum and minimum temperatures</th></tr>"
        "<tr><th>Location</th><th>Jan/Feb (°C)</th><th>July (°C)</th></tr>"
        "<tr><td>Auckland</td><td>23/16</td><td>14/7</td></tr><tr><td>Wellington</td><td>20/13</td><td>11/6</td></tr>"
        "<tr><td>Dunedin</td><td>19/11</td><td>10/3</td></tr></table></article></body></html>"
    )
    doc = load(path)
    (table,) = doc.tables
    assert table.columns == ("Location", "Jan/Feb (°C)", "July (°C)")
    assert table.caption == "Average daily maximum and minimum temperatures"
    assert cells(doc)[1] == ["Wellington", "20/13", "11/6"]


# --- reading ------------------------------------------------------------------------------------


TABLE_DOC = document("# Checks\n\nThe NICS checks of November 2015, by state.\n\n" + table_text(
    "Firearm checks, November 2015", ["State", "Permit Handgun", "Permit Long Gun", "Redemption Handgun",
                                      "Redemption Long Gun", "Totals"],
    [["Alabama", "100", "200", "300", "400", "1,000"], ["Texas", "21,550", "56,941", "5,748", "5,331", "89,570"],
     ["Utah", "100", "5,331", "7", "8", "5,446"]]) + "\n")


@pytest.mark.parametrize(
    ("question", "cell"),
    [
        ("How many long gun checks did Texas run under redemption?", "5,331"),
        ("How many permit long gun checks did Utah run?", "5,331"),
        ("How many permit long gun checks did Texas run in November 2015?", "56,941"),
        ("What were Alabama's total checks?", "1,000"),
    ],
)
def test_the_cell_at_the_named_row_and_column_wherever_the_figure_repeats(question: str, cell: str) -> None:
    reading = read_tables(question, [TABLE_DOC], idf_over(TABLE_DOC))
    assert reading is not None and not reading.refuses
    assert TABLE_DOC.text[slice(*reading.cell)] == cell


@pytest.mark.parametrize(
    "question",
    ["How many redemption handgun checks did Texas run in December 2015?",
     "How many permit handgun checks did American Samoa and Texas run?"],
)
def test_a_row_or_column_the_table_lacks_is_refused(question: str) -> None:
    reading = read_tables(question, [TABLE_DOC], idf_over(TABLE_DOC))
    assert reading is not None and reading.refuses


ROLES_DOC = document("# Change procedures\n\n" + table_text(
    "Roles and Responsibilities", ["Role", "Title", "Responsibility"],
    [["Assessor", "Third party assessor", "Conducts the security impact analysis and writes the assessment report"],
     ["Agency", "Authorizing official", "Approves the change and signs the authorization"]])
    + "\n\n" + table_text("Acronyms", ["Acronym", "Expansion"],
                           [["SIA", "Security Impact Analysis"], ["SAR", "Security Assessment Report"]]) + "\n")


def test_a_cell_that_restates_the_question_is_no_answer() -> None:
    """A glossary's "SIA | Security Impact Analysis" holds the question's words, but neither cell
    tells anything the question does not: the row that says who conducts it answers."""
    from qa.read.tables import _restates, _Question, _initials

    question = "Which role conducts the security impact analysis?"
    reading = read_tables(question, [ROLES_DOC], idf_over(ROLES_DOC))
    assert reading is not None and ROLES_DOC.text[slice(*reading.row.cells[0])] == "Assessor"  # not "SIA"
    q = _Question(["security", "impact", "analysi"], {}, set(), False, initials=_initials(question))
    assert _restates(q, {"sia"}, "SIA") and not _restates(q, {"sar"}, "SAR")


def test_words_naming_the_table_do_not_name_its_column() -> None:
    """"the roles table" names the table: the row is read whole (the answer model picks its cell)
    rather than answered by its Role cell."""
    reading = read_tables("According to the roles table, who signs the authorization?", [ROLES_DOC], idf_over(ROLES_DOC))
    assert reading is not None and reading.column is None
    assert ROLES_DOC.text[slice(*reading.row.cells[0])] == "Agency"


def test_a_question_naming_no_row_is_left_to_the_sentence_reader() -> None:
    assert read_tables("Why were the checks introduced?", [TABLE_DOC], idf_over(TABLE_DOC)) is None


# --- bad input ---------------------------------------------------------------------------------


def test_a_huge_table_with_empty_and_merged_cells_and_no_header_reads_without_a_crash(tmp_path: Path, make_docx) -> None:
    rows = [[f"Row {i}", "" if i % 7 == 0 else str(i * 3), "same", "same"] for i in range(10_000)]
    doc = load(make_docx(tmp_path / "huge.docx", ["Big table follows.", rows]))
    (table,) = doc.tables
    assert len(table.rows) >= 9_998
    reading = read_tables("What is the value of Row 9998?", [doc], idf_over(doc))
    assert reading is not None and doc.text[slice(*reading.row.cells[0])] == "Row 9998"


def test_a_row_named_without_its_column_is_read_by_the_answer_model_and_a_short_cell_given_whole() -> None:
    from qa.read.span import SpanResult
    from qa.read.tables import read_row, row_text

    doc = document("# Document Revision History\n\n" + table_text(
        "", ["Date", "Version", "Description", "Author"],
        [["03/12/2015", "0.6", "Draft", "Steve Levitas"], ["05/05/2015", "0.7", "Comments added", "Val Connell"]]) + "\n")

    class Model:  # the answer model, reading "Date: ...; Version: 0.6; ...; Author: Steve Levitas"
        def score(self, question, texts):
            (text,) = texts
            return [SpanResult(text.index("Steve"), text.index("Steve") + len("Steve"), 3.0)]

    reading = read_tables("Who wrote version 0.6 of the document?", [doc], idf_over(doc))
    assert reading is not None and reading.column is None
    assert row_text(reading)[0] == "Date: 03/12/2015; Version: 0.6; Description: Draft; Author: Steve Levitas"
    reading, (start, end), _ = read_row("Who wrote version 0.6 of the document?", reading, Model())
    assert reading.table.column(reading.column) == "Author"
    assert doc.text[start:end] == "Steve Levitas"  # the cell whole, not the model's "Steve"


def test_a_value_given_for_a_named_column_must_be_that_columns_value() -> None:
    """"version 3.0" asks for the row whose Version is 3.0: a row that only mentions 3.0 in its
    description is not it (the table then has no such row), while a monthly column's "November
    2015" is a header, not a value."""
    doc = document("# Document Revision History\n\n" + table_text(
        "", ["Date", "Version", "Description", "Author"],
        [["03/12/2015", "0.6", "Draft", "Steve Levitas"],
         ["07/30/2015", "1.0", "Removed Section 3.0 for public release", "John Hamilton"]]) + "\n")
    assert read_tables("Who approved version 3.0 of the document?", [doc], idf_over(doc)) is None
    found = read_tables("Who approved version 1.0 of the document?", [doc], idf_over(doc))
    assert found is not None and doc.text[slice(*found.row.cells[3])] == "John Hamilton"
    monthly = document("# Checks\n\n" + table_text("Checks", ["State", "November 2015", "December 2015"],
                                                    [["Texas", "56,941", "60,100"], ["Utah", "3,062", "3,500"]]) + "\n")
    reading = read_tables("How many checks did Texas run in November 2015?", [monthly], idf_over(monthly))
    assert reading is not None and not reading.refuses and monthly.text[slice(*reading.cell)] == "56,941"


def test_a_count_the_question_states_is_its_premise_not_a_row_or_column_to_read() -> None:
    """"Of the 174 murders ..., how many ...?" asks past the Total row's 174: that row and its
    header name nothing to answer with (not the negligent manslaughters beside it); a row that
    the question names does answer, and a question no row answers is left to the text."""
    doc = document("# Clery Act statistics\n\n" + table_text(
        "Crimes by location", ["Location", "Murder / non-negligent manslaughter", "Negligent manslaughter", "Robbery"],
        [["Total", "174", "46", "900"], ["On campus", "80", "20", "300"], ["Public property", "82", "26", "600"]]) + "\n")
    asked = "Of the 174 murders and non-negligent manslaughters reported, how many happened {}?"
    reading = read_tables(asked.format("on campus"), [doc], idf_over(doc))
    assert reading is not None and doc.text[slice(*reading.cell)] == "80"
    assert read_tables(asked.format("in residence halls"), [doc], idf_over(doc)) is None
    reading = read_tables("How many negligent manslaughters were reported in total?", [doc], idf_over(doc))
    assert reading is not None and doc.text[slice(*reading.cell)] == "46"  # without the premise, the Total row answers
    from qa.read.tables import _counted

    assert _counted("Of the 174 murders, how many were 2019 cases?") == (("174", "murder"),)  # a year dates


def test_the_confidence_model_trusts_a_cell_less_when_the_table_holds_less_of_the_question() -> None:
    from qa.read.tables import SIGNALS, _model, confidence

    assert _model().names == SIGNALS  # the shipped model reads the signals the reader gives
    doc = document(TABLE_DOC.text + "\nAn audit review of the counts followed in spring.\n")
    whole = read_tables("How many redemption long gun checks did Texas run?", [doc], idf_over(doc))
    part = read_tables("How many redemption long gun checks did Texas run after the audit review?", [doc], idf_over(doc))
    assert whole is not None and part is not None and whole.cell == part.cell
    assert 0.0 <= confidence(part) < confidence(whole) <= 1.0


def test_the_page_view_boxes_a_table_answer_cell_on_the_pdf_page(tmp_path: Path) -> None:
    from qa import pageview

    path = draw_table(tmp_path / "checks.pdf")
    doc = load(path)
    row = next(r for r in doc.tables[0].rows if doc.text[slice(*r.cells[0])] == "Texas")
    a, b = row.cells[1]  # Texas × Handgun: 56,941, right-aligned at x = 260 of 612 points
    found = pageview.locate(pageview.render(path, 1), doc.text[row.start : row.end], (a - row.start, b - row.start), 0.5)
    assert found is not None and found.whole
    (box,) = found.answer
    assert 200 / 612 < box.left < box.right <= 262 / 612


# --- real tables, end to end --------------------------------------------------------------------

REAL = Path(__file__).parent / "data" / "tables"


@pytest.fixture(scope="module")
def real_tables(tmp_path_factory):
    from dataclasses import replace

    from qa.config import Config
    from qa.pipeline import Pipeline

    pipeline = Pipeline(replace(Config.load(), index_dir=tmp_path_factory.mktemp("index")))
    results = pipeline.add(sorted(p for p in REAL.iterdir() if p.suffix != ".md"))
    assert all(r.status == "added" for r in results), results
    return pipeline


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("question", "cell", "source", "page"),
    [
        # The row's figures are 18,870 23,022 22,650 859 1,178 0 14 15 0 2,179 ...: the grouped
        # header (Redemption over Handgun, Long Gun, Other) picks the tenth.
        ("How many redemption handgun checks did Alabama run?", "2,179", "fbi-nics-firearm-background-checks-2015-11.pdf", 1),
        # Three scenarios share their row labels; the group row picks the block.
        ("In the best practice scenario, what is the projected UEC of a volume server in a localized data "
         "center in 2011?", "1,371", "epa-data-center-energy-report-2007-server-uec-tables.pdf", 1),
        ("How many White people were arrested for robbery in 2009?", "43,039",
         "census-statistical-abstract-2012-arrests-2009.pdf", 1),
        # No column named: the answer model reads the revision row, and the date cell is the answer.
        ("On what date was version 0.7 of the acceptance criteria issued?", "05/05/2015",
         "fedramp-general-document-acceptance-criteria-2018.docx", None),
    ],
)
def test_real_tables_answer_with_the_cell_its_row_and_page(real_tables, question, cell, source, page) -> None:
    answer = real_tables.ask(question)
    assert answer.answered, answer.message
    citation = answer.citations[0]
    assert (answer.answer, citation.source, citation.page) == (cell, source, page)
    assert citation.table is not None and citation.quote == answer.quote
    document = real_tables.document(citation.doc_id)
    assert document.text[citation.table.cell_start : citation.table.cell_end] == cell
    assert cell in answer.quote


@pytest.mark.e2e
def test_a_real_table_refuses_the_month_it_does_not_cover(real_tables) -> None:
    answer = real_tables.ask("How many redemption handgun checks did Alabama run in March 2015?")
    assert not answer.answered


@pytest.mark.e2e
def test_a_row_read_whole_is_read_by_the_base_size_model_when_it_is_installed(real_tables, monkeypatch) -> None:
    """The better of the two answer models picks the cell of a row whose column is not named."""
    from qa.read import verdict

    models = []

    def spy(question, reading, span_model):
        models.append(span_model)
        return read_row(question, reading, span_model)

    read_row = verdict.read_row
    monkeypatch.setattr(verdict, "read_row", spy)
    answer = real_tables.ask("Whose name is given for version 0.8 of the acceptance criteria?")
    assert answer.answer == "Val Connell"
    assert models == [real_tables.reader.base_model] and models[0] is not None
