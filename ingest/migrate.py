"""Copy an index between backends (FAISS files and a Milvus collection) without re-embedding anything.

The live generation of the source is read whole: documents with their full texts, chunks in row order
with their metadata and roles, outlines, and the stored vectors. The target receives them as one new
generation, switched atomically like any ingest, with the source's model and chunker signature, so a
search on either side ranks the same rows the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
from zhiwen.core.index import Generation, describe_index, live_manifest, open_live
from zhiwen.core.milvus import MilvusGeneration
from zhiwen.core.settings import Settings
from zhiwen.core.vocab import BACKENDS

from .milvus_store import write_milvus
from .store import write_generation, writer_lock

SIGNATURE_KEYS = ("embed_model", "encoder", "chunker")


@dataclass
class MigrationReport:
    """What ``migrate`` copied, and from where to where."""

    source: str
    target: str
    documents: int
    chunks: int

    def summary(self) -> str:
        return (
            f"copied {self.documents} documents, {self.chunks} chunks (vectors as stored, nothing re-embedded) "
            f"from {self.source} to {self.target}"
        )


def migrate(settings: Settings, to: str) -> MigrationReport:
    """Copy the live index of the other backend into backend ``to`` (``faiss`` or ``milvus``).

    The Milvus side is ``milvus_uri``/``milvus_collection``, the FAISS side ``index_dir``; both come from
    ``settings`` whatever its ``backend`` says.
    """
    if to not in BACKENDS:
        raise ValueError(f"--to must be one of {', '.join(BACKENDS)}, got {to!r}")
    source = settings.replace(backend="milvus" if to == "faiss" else "faiss")
    target = settings.replace(backend=to)
    manifest = live_manifest(source)
    if manifest is None:
        raise FileNotFoundError(f"nothing to migrate: no {describe_index(source)}")
    signature = {key: manifest[key] for key in SIGNATURE_KEYS}
    with writer_lock(settings.index_dir):
        gen = open_live(source, signature)
        try:
            documents = gen.documents()
            chunks = gen.chunks()
            outlines = {d.doc_id: gen.outline(d.doc_id) for d in documents}
            vectors = stored_vectors(gen)
        finally:
            gen.close()
        if to == "milvus":
            write_milvus(target, signature, documents, chunks, outlines, lambda selected: vectors, full=True)
        else:
            write_generation(
                target.index_dir,
                documents,
                chunks,
                vectors,
                signature,
                target.dense_index,
                target.ann_threshold,
                outlines,
                target.keep_generations,
            )
    return MigrationReport(describe_index(source), describe_index(target), len(documents), len(chunks))


def stored_vectors(gen: Generation | MilvusGeneration) -> np.ndarray:
    """Every chunk's vector, in row order, as the index stores it (exact for flat and HNSW; an
    ``ivf-sq8`` index gives back its 8-bit approximations)."""
    if isinstance(gen, MilvusGeneration):
        return gen.vectors(gen.rows())
    index = gen.dense
    if isinstance(index, faiss.IndexIVF):
        index.make_direct_map()
    return index.reconstruct_n(0, index.ntotal)
