"""``gateway index build``: chunk summaries of mapped series built (or brought up to date)
and persisted ahead of time, so no client waits for a first build.

The series are found as the dashboard finds them (one streamed read of each list rule's
box, :class:`~gateway.dashboard.SeriesCatalog`); then each series whose List key matches the
glob is read once into summaries, which are saved in TStorage under ``[tstorage] index_cid``.
A series with valid persisted summaries is only caught up from their watermark.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from gateway.keymap import LIST_PREFIX, ListTarget
from gateway.storage.gateway_storage import GatewayStorage
from gateway.transfer.common import progress_bar


@dataclass(frozen=True)
class BuildSummary:
    """What a build did: series indexed and the records they hold."""

    series: int
    records: int

    def text(self) -> str:
        """One line for the terminal."""
        return f"indexed {self.series:,} series holding {self.records:,} records"


def matching_series(storage: GatewayStorage, glob: str | None) -> list[ListTarget]:
    """The List targets of the series with records whose user key matches ``glob``."""
    from gateway.dashboard import SeriesCatalog  # the dashboard's discovery of series

    out: list[ListTarget] = []
    for series in SeriesCatalog(storage).series():
        for key, field in storage.keymap.keys_for_series(series):
            if field is not None or not key.startswith(LIST_PREFIX):
                continue
            if glob is None or fnmatch.fnmatchcase(key.removeprefix(LIST_PREFIX), glob):
                target = storage.keymap.resolve(key)
                assert isinstance(target, ListTarget)
                out.append(target)
    return out


def build_indexes(storage: GatewayStorage, glob: str | None, progress: bool) -> BuildSummary:
    """Build and persist the summaries of every mapped series matching ``glob``.

    Raises:
        ValueError: summaries are not persisted (``index_persist = false``).
        TStorageUnavailable: TStorage did not answer (series done so far stay saved).
    """
    if storage.series.store is None:
        raise ValueError("[tstorage] index_persist = false: there is nothing to build ahead")
    targets = matching_series(storage, glob)
    records = 0
    with progress_bar("index build", "series", len(targets), progress) as bar:
        for t in targets:
            records += storage.series.save_summaries(t)
            bar.update(1)
            bar.set_postfix(records=f"{records:,}")
    return BuildSummary(len(targets), records)
