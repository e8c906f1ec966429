"""Mapped series seen as znsocket Lists, and meters seen as Dicts of latest values.

See ``docs/data-model.md`` for the model. The indexes (chunk summaries, caught up with
TStorage) are :mod:`gateway.storage.series_index`; the List commands
:mod:`gateway.storage.list_view`, the Dict commands :mod:`gateway.storage.dict_view`.
"""

from __future__ import annotations

from gateway.storage.dict_view import DictViews
from gateway.storage.list_view import ListViews
from gateway.storage.series_index import tstorage_now_ns

__all__ = ["SeriesViews", "tstorage_now_ns"]


class SeriesViews(ListViews, DictViews):
    """List and Dict commands over mapped series."""
