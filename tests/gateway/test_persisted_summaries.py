"""Chunk summaries persisted in TStorage: a fresh gateway starts from another one's
summaries without reading the series, catches up from their watermark exactly, and
rebuilds (never uses) a summary that is corrupt, missing or half-written."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from gateway.errors import TStorageUnavailable
from gateway.keymap import CAP_RANGE
from gateway.storage import GatewayStorage, persisted
from gateway.timeseries.reads import TimeSeriesReads
from tests._servers import ROOT, VENV_BIN, ServerProcess
from tests.gateway.test_index_build import put
from tests.gateway.test_summaries import T0, check_against, tiny
from tests.tstorage_client._proxy import Relay
from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.record import Key, Record

Make = Callable[[str], GatewayStorage]
INDEX_CID = 2_147_483_001  # the default [tstorage] index_cid
KEY = "meters/2/1"


def config(tstorage: ServerProcess, cid: int, generic: int, chunk: int = 16) -> str:
    return tiny(tstorage, cid, generic, chunk, 100_000).replace(
        "[generic]", "index_save = 0\n\n[generic]", 1
    )


def full_reads(gw: GatewayStorage) -> list[tuple[Any, Any]]:
    """Record every read of a whole series (all caps, all acqs) the gateway makes."""
    seen: list[tuple[Any, Any]] = []
    for name in ("stream", "stream_columns"):
        real = getattr(gw.link, name)

        def spy(lo: Any, hi: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            # every cap and every acq (a chunk read stops below the box's watermark)
            whole = lo[3] == CAP_RANGE[0] and hi[3] == CAP_RANGE[1] + 1
            if lo[0] != INDEX_CID and whole and lo[4] == -(2**63) and hi[4] == 2**63 - 1:
                seen.append((lo, hi))
            return _real(lo, hi, *args, **kwargs)

        setattr(gw.link, name, spy)
    return seen


def history(tstorage: ServerProcess, cid: int, n: int = 3000) -> dict[int, float]:
    caps = T0 + np.arange(n, dtype=np.int64) * 100
    vals = np.cos(np.arange(n) / 50.0)
    put(tstorage, cid, 2, 1, caps, vals)
    return dict(zip(caps.tolist(), vals.tolist(), strict=True))


def test_gateways_share_persisted_summaries_and_catch_up_from_their_watermark(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    model = history(tstorage, cid)
    first = make_storage(config(tstorage, cid, fresh_cid()))
    built = full_reads(first)
    check_against(first, TimeSeriesReads(first), KEY, model)
    assert len(built) == 1  # the one streamed build, then saved
    # a second gateway starts from them: no read of the whole series
    second = make_storage(config(tstorage, cid, fresh_cid()))
    seen = full_reads(second)
    check_against(second, TimeSeriesReads(second), KEY, model)
    assert seen == []
    # writes from outside: corrections, late records, appends; both catch up exactly
    rng = np.random.default_rng(5)
    held = np.asarray(sorted(model), dtype=np.int64)
    for caps in (
        rng.choice(held, 40, replace=False),
        rng.choice(held[:-1], 40, replace=False) + 7,
        held[-1] + 100 * np.arange(1, 41, dtype=np.int64),
    ):
        vals = rng.normal(size=len(caps))
        put(tstorage, cid, 2, 1, caps, vals)
        model.update(zip(caps.tolist(), vals.tolist(), strict=True))
    for gw in (first, second):
        gw.series.series_index(TimeSeriesReads(gw).target(KEY), fresh=True)
        check_against(gw, TimeSeriesReads(gw), KEY, model)
    # a third starts from the newest save (or an older one and a longer catch-up)
    third = make_storage(config(tstorage, cid, fresh_cid()))
    seen = full_reads(third)
    check_against(third, TimeSeriesReads(third), KEY, model)
    assert seen == []


def corrupt(tstorage: ServerProcess, cid: int, payload: bytes) -> None:
    """A newer version of the series' summary header."""
    with Channel("127.0.0.1", tstorage.port, BytesPayloadType(), timeout=5) as ch:
        assert ch.put([Record(Key(INDEX_CID, 2, 1, cid << 32, 0), payload)]).is_ok()


def header(tstorage: ServerProcess, cid: int) -> dict[str, Any]:
    with Channel("127.0.0.1", tstorage.port, BytesPayloadType(), timeout=5) as ch:
        res = ch.get(Key(INDEX_CID, 2, 1, cid << 32, -(2**63)),
                     Key(INDEX_CID + 1, 3, 2, (cid << 32) + 1, 2**63 - 1))  # fmt: skip
        assert res.is_ok()
        newest = max(res.data, key=lambda r: r.key.acq)  # type: ignore[union-attr]
        return dict(json.loads(newest.value))


@pytest.mark.parametrize(
    "damage",
    [
        lambda h: b"\x00not json",
        lambda h: json.dumps({**h, "pages": [[g, n, c ^ 1] for g, n, c in h["pages"]]}).encode(),
        lambda h: json.dumps(
            {**h, "pages": [[(g + 7) % 65536, n, c] for g, n, c in h["pages"]]}
        ).encode(),
        lambda h: json.dumps({**h, "rows": h["rows"] + 1}).encode(),
        lambda h: json.dumps({**h, "chunk": 99}).encode(),
    ],
    ids=["unreadable", "checksum", "missing page", "row count", "other chunk size"],
)
def test_a_corrupt_or_missing_summary_is_rebuilt_never_used(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    damage: Callable[[dict[str, Any]], bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cid = fresh_cid()
    model = history(tstorage, cid, 1000)
    first = make_storage(config(tstorage, cid, fresh_cid()))
    check_against(first, TimeSeriesReads(first), KEY, model)
    corrupt(tstorage, cid, damage(header(tstorage, cid)))
    fresh = make_storage(config(tstorage, cid, fresh_cid()))
    seen = full_reads(fresh)
    with caplog.at_level(logging.WARNING, logger="gateway.index"):
        check_against(fresh, TimeSeriesReads(fresh), KEY, model)
    assert len(seen) == 1  # rebuilt from the records
    assert "rebuilding" in caplog.text
    # and saved again: the next gateway uses the new save
    after = make_storage(config(tstorage, cid, fresh_cid()))
    seen = full_reads(after)
    check_against(after, TimeSeriesReads(after), KEY, model)
    assert seen == []


def test_a_build_cut_mid_way_saves_nothing_and_the_next_counts_every_record_once(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    model = history(tstorage, cid, 20_000)
    with Relay(tstorage.port, cut_after=200_000) as relay:
        text = config(tstorage, cid, fresh_cid()).replace(
            f"port = {tstorage.port}", f"port = {relay.port}"
        )
        cut = make_storage(text)
        reads = TimeSeriesReads(cut)
        with pytest.raises(TStorageUnavailable):
            reads.info(reads.target(KEY))
        relay.cut_after = None
        check_against(cut, reads, KEY, model)  # built again, from the start
    restarted = make_storage(config(tstorage, cid, fresh_cid()))
    check_against(restarted, TimeSeriesReads(restarted), KEY, model)


def test_the_index_cid_must_be_free(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    text = config(tstorage, fresh_cid(), fresh_cid()).replace(
        "index_save = 0", f"index_save = 0\nindex_cid = {INDEX_CID - 1}"
    )
    with pytest.raises(ValueError, match="index_cid"):
        make_storage(text.replace("[generic]\ncid = ", f"[generic]\ncid = {INDEX_CID - 1}\n#"))


def test_index_build_command_saves_summaries_of_the_matching_series(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int], tmp_path: Any
) -> None:
    cid = fresh_cid()
    model = history(tstorage, cid, 2000)
    put(tstorage, cid, 3, 1, np.asarray([T0], dtype=np.int64), np.asarray([1.0]))
    text = config(tstorage, cid, fresh_cid())
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    done = subprocess.run(
        [str(VENV_BIN / "gateway"), "index", "build", "--config", str(path), "--key", "meters/2/*"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "indexed 1 series holding 2,000 records" in done.stderr
    gw = make_storage(text)
    seen = full_reads(gw)
    check_against(gw, TimeSeriesReads(gw), KEY, model)
    assert seen == []  # started from the saved summaries
    assert gw.llen("znsocket.List:meters/3/1") == 1
    assert len(seen) == 1  # meters/3/1 did not match the glob: built on first read


def header_versions(tstorage: ServerProcess, cid: int) -> int:
    with Channel("127.0.0.1", tstorage.port, BytesPayloadType(), timeout=5) as ch:
        res = ch.get(Key(INDEX_CID, 2, 1, cid << 32, -(2**63)),
                     Key(INDEX_CID + 1, 3, 2, (cid << 32) + 1, 2**63 - 1))  # fmt: skip
        assert res.is_ok()
        return len(res.data)  # type: ignore[arg-type]


@pytest.mark.parametrize("save_s, saves_after", [(0, 2), (3600, 1)])
def test_changed_summaries_are_saved_at_most_every_index_save_seconds(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    save_s: int,
    saves_after: int,
) -> None:
    cid = fresh_cid()
    history(tstorage, cid, 500)
    text = config(tstorage, cid, fresh_cid()).replace("index_save = 0", f"index_save = {save_s}")
    gw = make_storage(text)
    t = TimeSeriesReads(gw).target(KEY)
    assert gw.llen("znsocket.List:" + KEY) == 500
    assert header_versions(tstorage, cid) == 1  # saved once built
    put(tstorage, cid, 2, 1, np.asarray([T0 + 10**9], dtype=np.int64), np.asarray([2.0]))
    gw.series.series_index(t, fresh=True)
    assert gw.llen("znsocket.List:" + KEY) == 501
    assert header_versions(tstorage, cid) == saves_after


def test_with_index_persist_off_nothing_is_written_under_the_index_cid(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    history(tstorage, cid, 300)
    text = config(tstorage, cid, fresh_cid()).replace(
        "index_save = 0", "index_save = 0\nindex_persist = false"
    )
    gw = make_storage(text)
    assert gw.llen("znsocket.List:" + KEY) == 300
    assert header_versions(tstorage, cid) == 0


def test_a_series_with_more_chunks_than_persist_is_served_and_built_at_each_start(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Summary pages have a slot each below the fine directory's, so a series persists the
    summaries of at most ``MAX_CHUNKS`` chunks (made 10 here): a longer one is served
    exactly, nothing is written for it (no page in another's slot), the log says why once,
    and the next gateway builds it again from the records."""
    monkeypatch.setattr(persisted, "MAX_CHUNKS", 10)
    cid = fresh_cid()
    model = history(tstorage, cid, 500)  # 32 chunks of 16
    first = make_storage(config(tstorage, cid, fresh_cid()))
    with caplog.at_level(logging.WARNING, logger="gateway.index"):
        check_against(first, TimeSeriesReads(first), KEY, model)
        caps = T0 + 100 * np.arange(500, 520, dtype=np.int64)
        for cap in caps.tolist():  # changes that would be saved
            put(tstorage, cid, 2, 1, np.asarray([cap]), np.asarray([1.5]))
            model[cap] = 1.5
            first.series.series_index(TimeSeriesReads(first).target(KEY), fresh=True)
        check_against(first, TimeSeriesReads(first), KEY, model)
    assert caplog.text.count("more than the 10 a series persists") == 1
    with Channel("127.0.0.1", tstorage.port, BytesPayloadType(), timeout=5) as ch:
        res = ch.get(Key(INDEX_CID, 2, 1, cid << 32, -(2**63)),
                     Key(INDEX_CID + 1, 3, 2, (cid + 1) << 32, 2**63 - 1))  # fmt: skip
        assert res.is_ok() and not res.data  # no header, page or fine page of the series
    again = make_storage(config(tstorage, cid, fresh_cid()))
    seen = full_reads(again)
    check_against(again, TimeSeriesReads(again), KEY, model)
    assert len(seen) == 1  # built from the records
