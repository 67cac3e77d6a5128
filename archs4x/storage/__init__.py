"""Storage: the ARCHS4 files themselves, read without xarray.

Sources (local and remote files behind one protocol), the ARCHS4 layout, the chunk
B-tree walker, the chunk reader, text decoding, and the bounded per-process caches.
This layer imports nothing from the rest of archs4x but ``errors``, ``dims`` and
``_options``.
"""

from .caches import clear_caches
from .identity import FileIdentity
from .layout import Layout, detect_layout
from .reader import ChunkReader
from .sources import LocalFile, RemoteFile, Source, build_chunk_table, is_url, open_source

__all__ = [
    "ChunkReader",
    "FileIdentity",
    "Layout",
    "LocalFile",
    "RemoteFile",
    "Source",
    "build_chunk_table",
    "clear_caches",
    "detect_layout",
    "is_url",
    "open_source",
]
