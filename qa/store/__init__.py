"""The index behind one seam (`protocol`): what retrieval and reading need, by id, and a writer.

`local` is the default backend: FAISS + BM25 arrays in atomic generations on disk.
"""

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

__all__ = [
    "IndexError",
    "KeywordIndex",
    "NewDocument",
    "Snapshot",
    "StaleSnapshot",
    "Store",
    "build_dense_index",
    "ivf_lists",
]
