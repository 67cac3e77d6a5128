"""Helpers for tests that count what a read touched."""

from __future__ import annotations

from archs4x.storage import open_source


def get_reader(source):
    """This process's chunk reader of ``source`` (its ``stats`` count chunks served)."""
    return open_source(source).counts_reader()


def chunks_served(source) -> int:
    return get_reader(source).stats.chunks
