"""The page: the gr.Blocks layout and the wiring of its events to the handlers.

Layout: the conversation on the left (answer cards: bold short answer, the verbatim quote, a confidence
label, numbered citations), the evidence panel on the right (one card per passage behind the current
answer, the answer marked by character offsets, a button that opens the whole document or PDF page
scrolled to the quote, and for a PDF the page as printed with the quote boxed), and a documents
panel below (upload, list, remove with confirmation, and a filter to ask only within chosen
documents).
"""

from __future__ import annotations

import os
from typing import Any

import gradio as gr

from qa.chat.api import add_endpoints
from qa.chat.assets import EVIDENCE_JS, VIEWER_JS
from qa.chat.backend import ASK_CONCURRENCY, WRITES, PipelineLike
from qa.chat.handlers import Handlers, clear_chat, select_from_chat, select_from_picker, show_question
from qa.chat.render import DOC_HEADERS, EVIDENCE_EMPTY
from qa.ingest import SUPPORTED_SUFFIXES


def build_app(pipeline: PipelineLike) -> gr.Blocks:
    """The chat, evidence panel, documents panel, and stable API endpoints for scripts and tests
    (qa.chat.api); the queue runs questions side by side and index writes one at a time."""
    # Gradio reads this at each call: no telemetry from a tool that handles private briefings.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    handler = Handlers(pipeline)

    with gr.Blocks(title="briefqa", analytics_enabled=False) as demo:
        gr.Markdown(
            "## briefqa\nAsk about the briefing documents. Answers are quoted verbatim with their "
            "source, page and character span; when the documents do not hold the answer, it says so."
        )
        records = gr.State([])
        current = gr.State(0)
        pending = gr.State("")
        pending_removal = gr.State("")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                chatbot = gr.Chatbot(
                    elem_id="chatbot",
                    label="Answers",
                    show_label=False,
                    height=560,
                    buttons=["copy"],
                    placeholder="Answers appear here, each quoting the documents with numbered sources.",
                )
                with gr.Row():
                    question = gr.Textbox(
                        elem_id="question",
                        show_label=False,
                        placeholder="Ask a question…",
                        scale=5,
                        min_width=180,
                        max_lines=4,
                    )
                    ask = gr.Button("Ask", variant="primary", elem_id="ask", scale=1, min_width=70)
                examples = gr.Dataset(
                    components=["textbox"], samples=[], label="Examples from your documents", elem_id="examples",
                    visible=False,
                )
                doc_filter = gr.Dropdown(
                    label="Ask only within (optional)",
                    elem_id="doc-filter",
                    multiselect=True,
                    choices=[],
                    info="Leave empty to search every document.",
                )
                strict_box = gr.Checkbox(
                    label="Refuse unless clearly answered (strict)",
                    value=pipeline.config.abstention == "strict",
                    elem_id="strict",
                    info="Refuses more questions the documents do not answer, and a few that they do.",
                )
                clear = gr.Button("Clear conversation", size="sm", elem_id="clear")
            with gr.Column(scale=2, min_width=300):
                answer_picker = gr.Dropdown(label="Sources for answer", elem_id="answer-picker", choices=[])
                evidence = gr.HTML(EVIDENCE_EMPTY, elem_id="evidence", js_on_load=EVIDENCE_JS, max_height=720)
                viewer = gr.HTML("", elem_id="doc-viewer", js_on_load=VIEWER_JS)
        with gr.Accordion("Documents", open=True, elem_id="documents-panel"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=300):
                    upload = gr.File(
                        label=f"Add documents ({', '.join(SUPPORTED_SUFFIXES)}; several at once)",
                        elem_id="upload",
                        file_count="multiple",
                        file_types=list(SUPPORTED_SUFFIXES),
                    )
                    upload_report = gr.Markdown(elem_id="upload-report")
                with gr.Column(scale=3, min_width=300):
                    docs_table = gr.Dataframe(
                        headers=DOC_HEADERS,
                        label="Indexed documents",
                        elem_id="documents",
                        interactive=False,
                        wrap=True,
                        column_widths=["30%", "27%", "13%", "14%", "16%"],
                    )
                    with gr.Row():
                        to_remove = gr.Dropdown(label="Document to remove", elem_id="remove-choice", scale=3, min_width=180)
                        remove = gr.Button("Remove…", variant="stop", elem_id="remove", scale=1, min_width=90)
                    with gr.Row(visible=False, elem_id="confirm-row") as confirm_row:
                        confirm_text = gr.Markdown(elem_id="confirm-text")
                        confirm = gr.Button("Yes, remove", variant="stop", elem_id="confirm-remove", min_width=90)
                        cancel = gr.Button("Cancel", elem_id="cancel-remove", min_width=90)
                    remove_report = gr.Markdown(elem_id="remove-report")
        # API-only components: uploads through gradio_client go through Gradio's file checks like the UI's.
        api_files = gr.File(file_count="multiple", visible=False, label="files")
        api_results = gr.JSON(visible=False, label="results")

        # --- events -----------------------------------------------------------------------------
        private: dict[str, Any] = {"api_visibility": "private"}
        listing = [docs_table, to_remove, doc_filter, examples]
        answer_outputs = [chatbot, records, current, evidence, answer_picker, viewer]
        for trigger in (question.submit, ask.click):
            trigger(show_question, [question, chatbot], [question, chatbot, pending], **private).then(
                handler.answer_question, [pending, chatbot, records, doc_filter, strict_box], answer_outputs, **private
            )
        examples.click(lambda sample: sample[0] if sample else "", [examples], [question], **private).then(
            show_question, [question, chatbot], [question, chatbot, pending], **private
        ).then(handler.answer_question, [pending, chatbot, records, doc_filter, strict_box], answer_outputs, **private)
        chatbot.select(select_from_chat, [records], [current, evidence, answer_picker, viewer], **private)
        answer_picker.input(select_from_picker, [records, answer_picker], [current, evidence, viewer], **private)
        evidence.click(handler.open_document, [records, current], [viewer], **private)
        viewer.click(handler.open_page, [records, current], [viewer], **private)
        cleared = [chatbot, records, current, evidence, answer_picker, viewer, question]
        clear.click(clear_chat, None, cleared, **private)
        chatbot.clear(clear_chat, None, cleared, **private)  # the chatbot's own trash button

        upload.upload(handler.upload_files, [upload], [upload_report, upload], **WRITES, **private).then(
            handler.refresh, [doc_filter], listing, **private
        )
        remove.click(handler.ask_removal, [to_remove], [pending_removal, confirm_row, confirm_text], **private)
        cancel.click(lambda: ("", gr.Row(visible=False)), None, [pending_removal, confirm_row], **private)
        confirm.click(
            handler.confirm_removal, [pending_removal], [pending_removal, confirm_row, remove_report], **WRITES, **private
        ).then(handler.refresh, [doc_filter], listing, **private)
        demo.load(handler.refresh, [doc_filter], listing, **private)

        add_endpoints(pipeline, api_files, api_results)
    demo.queue(default_concurrency_limit=ASK_CONCURRENCY, max_size=512)
    return demo
