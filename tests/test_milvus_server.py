"""MilvusStore over a real Milvus server: the PyPI `milvus` package's standalone 2.3.5 on loopback.

The package carries the server binary (a 58 MB wheel, unpacked into the data folder on start;
nothing is downloaded). Milvus 2.3 has no sparse vectors or BM25 function: the store must notice,
say so, and answer from dense search alone. Skipped, with the reason, where the package is not
installed or the server does not start.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tests.test_store_contract import TEXTS, new_document

pytestmark = pytest.mark.e2e

START_SECONDS = 120  # it started in 9 s on 2 busy cores


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory):
    milvus = pytest.importorskip("milvus", reason="the PyPI `milvus` server package is not installed")
    pytest.importorskip("pymilvus", reason="pymilvus is not installed")
    server = milvus.MilvusServer()
    server.set_base_dir(str(tmp_path_factory.mktemp("milvus-server")))
    server.wait_for_started = False
    try:
        server.start()
        server.wait_started(timeout=START_SECONDS * 1000)
    except Exception as exc:  # any failure to start is a skip with its reason, never a hang
        server.stop()
        pytest.skip(f"the Milvus {milvus.__version__} server did not start: {exc}")
    yield f"http://127.0.0.1:{server.listen_port}"
    server.stop()


def test_add_ask_remove_through_a_server(server_uri, caplog):
    from qa.store.milvus import MilvusStore

    docs = [new_document(t, seed=i + 1) for i, t in enumerate(TEXTS)]
    store = MilvusStore(server_uri, "test-model", prefix="server_test")
    with caplog.at_level(logging.WARNING, logger="qa.store.milvus"), store.lock():
        store.commit(docs, set())
    assert "has no BM25 function" in caplog.text and "keyword search is off" in caplog.text
    view = store.view()
    assert view.chunk_count == sum(len(d.chunk_spans) for d in docs)
    query = docs[2].chunk_vectors[1]
    hits = view.dense_search(query, 3)
    top = view.chunks([hits[0].chunk_id])[0]
    assert top.doc_id == docs[2].doc.doc_id and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(top.vector, query) and top.text == docs[2].doc.text[top.start : top.end]
    assert view.keyword_search(["storm"], 5) == []  # no BM25 on 2.3: dense only
    sentences = view.sentences(top.sentence_ids)
    assert sentences[0].text == docs[2].doc.text[sentences[0].start : sentences[0].end]
    with store.lock():
        store.commit([], {docs[2].doc.doc_id})
    after = store.view()
    assert docs[2].doc.doc_id not in {r.doc_id for r in after.chunks([h.chunk_id for h in after.dense_search(query, 20)])}
    assert store.check()["documents"] == len(docs) - 1
