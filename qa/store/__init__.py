"""The index behind one seam (`protocol`): what retrieval and reading need, by id, and a writer.

`local` is the default backend: FAISS + BM25 arrays in atomic generations on disk; `milvus`
keeps the same records in Milvus collections (`open_store` picks one from the configuration).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qa.store.local import (
    IndexError,
    KeywordIndex,
    NewDocument,
    Snapshot,
    StaleSnapshot,
    Store,
    build_dense_index,
    ivf_lists,
)

if TYPE_CHECKING:
    from qa.config import Config
    from qa.store.protocol import IndexStore


def open_store(config: Config) -> IndexStore:
    """The configured backend over `config.index_dir` (local) or `config.milvus_target` (Milvus)."""
    if config.store == "milvus":
        from qa.store.milvus import MilvusStore

        return MilvusStore(config.milvus_target, config.model, token=config.milvus_credentials)
    return Store(config.index_dir, config.model)


__all__ = [
    "open_store",
    "IndexError",
    "KeywordIndex",
    "NewDocument",
    "Snapshot",
    "StaleSnapshot",
    "Store",
    "build_dense_index",
    "ivf_lists",
]
