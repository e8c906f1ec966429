"""Fine rows: summaries of runs of a sixteenth of a chunk, persisted beside the chunk
summaries, so an aligned read over about as many chunks as buckets reads only the chunks
at the window's ends. They must agree with the records however the records arrived, and
a stale, damaged or missing page must never be used (the chunks are read instead)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from gateway.errors import TStorageUnavailable
from gateway.storage import GatewayStorage, persisted
from gateway.storage.fine_rows import (
    BadPage,
    FineRows,
    add_digests,
    decode_page,
    digest,
    digest_one,
    digests,
    encode_page,
)
from gateway.storage.persisted import FINE_DIR_SLOT, FINE_SLOT
from gateway.storage.summaries import FINE_PENDING_SHARE
from gateway.timeseries.downsample import slice_edges
from gateway.timeseries.reads import TimeSeriesReads
from tests._servers import ServerProcess
from tests.gateway.test_aligned_rollups import KEY, T0, check_window, chunk_reads, saved_series
from tests.gateway.test_index_budget_bytes import accounted
from tests.gateway.test_index_build import put
from tests.gateway.test_persisted_summaries import INDEX_CID, config
from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.record import Key, Record

Make = Callable[[str], GatewayStorage]
CHUNK = 64  # fine rows of 4 records
N = 64 * 200


def test_a_digest_is_the_same_however_the_records_are_added() -> None:
    rng = np.random.default_rng(3)
    caps = np.sort(rng.choice(2**62, 500, replace=False)).astype(np.int64)
    vals = rng.normal(size=500)
    vals[7] = np.nan
    whole = digest(caps, vals)
    one_by_one = 0
    for c, v in zip(caps.tolist(), vals.tolist(), strict=True):
        one_by_one = add_digests(one_by_one, digest_one(c, v))
    assert one_by_one == whole
    parts = digests(caps, vals, np.asarray([0, 100, 101, 400]))
    assert add_digests(add_digests(int(parts[0]), int(parts[1])),
                       add_digests(int(parts[2]), int(parts[3]))) == whole  # fmt: skip
    changed = vals.copy()
    changed[250] = np.nextafter(changed[250], np.inf)  # one bit of one value
    assert digest(caps, changed) != whole


def test_a_page_decodes_to_what_was_encoded_and_a_damaged_one_is_refused() -> None:
    rng = np.random.default_rng(4)
    entries = []
    for lo in (10, 500, 9000):
        caps = lo + np.arange(37, dtype=np.int64)
        vals = rng.normal(size=37)
        entries.append(FineRows.of(lo, caps, vals, 4, digest(caps, vals)))
    data = encode_page(entries)
    got = decode_page(data)
    assert sorted(got) == [10, 500, 9000]
    for e in entries:
        g = got[e.lo]
        assert g.digest == e.digest
        for name in ("cap", "cap_last", "n", "min", "max", "sum", "first", "last"):
            np.testing.assert_array_equal(getattr(g, name), getattr(e, name))
    for bad in (data[:-8], data[:5], data + b"\0" * 8, b"\xff" * 8 + data[8:]):
        with pytest.raises(BadPage):
            decode_page(bad)


def test_summary_digests_agree_between_appends_and_a_build(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """A gateway that saw a series grow by appends (one, then batches) and one that built it
    from TStorage count the same digest for every chunk."""
    cid = fresh_cid()
    text = config(tstorage, cid, fresh_cid(), CHUNK).replace("index_save = 0", "index_save = 3600")
    writer = make_storage(text)
    full = "znsocket.List:" + KEY
    rng = np.random.default_rng(8)
    vals = rng.normal(size=600).round(6)
    for v in vals[:150].tolist():
        writer.rpush(full, str(v))
    writer.rpush(full, *[str(v) for v in vals[150:].tolist()])
    reads = TimeSeriesReads(writer)
    t = reads.target(KEY)
    _, _, grown = writer.series.series_index(t, fresh=True)
    builder = make_storage(text.replace("index_save = 3600", "index_persist = false"))
    assert builder.series.store is None  # built from the records, not from the saved rows
    _, _, built = builder.series.series_index(TimeSeriesReads(builder).target(KEY))
    assert grown.lo.tolist() == built.lo.tolist()
    assert grown.digest.tolist() == built.digest.tolist()
    assert all(d != 0 for d in built.digest.tolist())


def chunks_read(seen: list[tuple[Any, Any]]) -> float:
    """How many chunks' worth of caps the reads ``seen`` covered (one record per 10 ns)."""
    return sum(min(int(hi[3]), T0 + N * 10) - max(int(lo[3]), T0) for lo, hi in seen) / (CHUNK * 10)


def _aligned(reads: TimeSeriesReads, lo: int, hi: int, buckets: int) -> tuple[object, np.ndarray]:
    t = reads.target(KEY)
    nominal = slice_edges(lo, hi, buckets)
    return reads.downsampled(t, buckets, lo, hi, align="rows"), nominal


def test_an_aligned_read_over_as_many_chunks_as_buckets_reads_only_the_window_ends(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    caps = T0 + np.arange(N, dtype=np.int64) * 10
    vals = np.sin(np.arange(N) / 37.0) * 100 + np.arange(N) % 11
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals, CHUNK)
    gw = make_storage(config(tstorage, cid, fresh_cid(), CHUNK))
    reads = TimeSeriesReads(gw)
    seen = chunk_reads(gw, cid)
    reads.info(reads.target(KEY))  # summaries loaded, nothing read
    assert seen == []
    # 150 chunks in the window, 150 buckets: each chunk about a bucket wide
    lo, hi = int(caps[1000]) + 3, int(caps[1000 + 150 * CHUNK]) + 3
    w, nominal = _aligned(reads, lo, hi, 150)
    check_window(w, caps, vals, lo, hi, nominal)  # type: ignore[arg-type]
    # the two chunks at the window's ends (or a few more where an edge found no fine
    # row close enough), not the window's 150
    assert chunks_read(seen) <= 6, seen
    # equal slices must cut fine rows: their chunks are read, as without fine rows
    seen.clear()
    t = reads.target(KEY)
    reads.downsampled(t, 150, lo + 5 * CHUNK * 10, hi + 5 * CHUNK * 10, align="equal")
    assert chunks_read(seen) > 100


def header(tstorage: ServerProcess, cid: int) -> tuple[int, dict[str, object]]:
    with Channel("127.0.0.1", tstorage.port, BytesPayloadType(), timeout=5) as ch:
        res = ch.get(Key(INDEX_CID, 6, 1, cid << 32, -(2**63)),
                     Key(INDEX_CID + 1, 7, 2, (cid << 32) + 1, 2**63 - 1))  # fmt: skip
        assert res.is_ok()
        newest = max(res.data, key=lambda r: r.key.acq)
        return newest.key.acq, dict(json.loads(newest.value))


def directory(tstorage: ServerProcess, cid: int, where: list[int]) -> list[list[int]]:
    """The fine directory a header names."""
    gen = int(where[0])
    cap = cid << 32 | gen << 16 | FINE_DIR_SLOT
    with Channel("127.0.0.1", tstorage.port, BytesPayloadType(), timeout=5) as ch:
        res = ch.get(
            Key(INDEX_CID, 6, 1, cap, -(2**63)), Key(INDEX_CID + 1, 7, 2, cap + 1, 2**63 - 1)
        )
        assert res.is_ok()
        found = [r.value for r in res.data if zlib.crc32(r.value) == where[2]]
        return list(json.loads(found[0]))


def put_header(tstorage: ServerProcess, cid: int, head: dict[str, object]) -> None:
    with Channel("127.0.0.1", tstorage.port, BytesPayloadType(), timeout=5) as ch:
        payload = json.dumps(head).encode()
        assert ch.put([Record(Key(INDEX_CID, 6, 1, cid << 32, 0), payload)]).is_ok()


def new_directory(
    tstorage: ServerProcess, cid: int, head: dict[str, object], fine: list[list[int]]
) -> None:
    """Store ``fine`` as a fine directory of a later generation and name it in ``head``
    (saved by the caller with :func:`put_header`)."""
    where = head["fine"]
    assert isinstance(where, list)
    data = json.dumps(fine).encode()
    gen = int(where[0]) + 9
    with Channel("127.0.0.1", tstorage.port, BytesPayloadType(), timeout=5) as ch:
        key = Key(INDEX_CID, 6, 1, cid << 32 | gen << 16 | FINE_DIR_SLOT, 0)
        assert ch.put([Record(key, data)]).is_ok()
    head["fine"] = [gen, len(data), zlib.crc32(data)]


def lose_fine_rows(tstorage: ServerProcess, cid: int) -> dict[str, object]:
    """Damage the fine directory's CRC in the series' header: its saved rows are lost.
    Returns the header as it is now."""
    _, head = header(tstorage, cid)
    where = head["fine"]
    assert isinstance(where, list)
    head["fine"] = [where[0], where[1], where[2] ^ 1]
    put_header(tstorage, cid, head)
    return head


def first_read(
    make_storage: Make, text: str, cid: int, window: tuple[int, int], records: tuple[Any, Any]
) -> float:
    """An aligned 150-bucket read of ``window`` by a fresh gateway, checked against the
    records; returns how many chunks it read."""
    gw = make_storage(text)
    seen = chunk_reads(gw, cid)
    w, nominal = _aligned(TimeSeriesReads(gw), *window, 150)
    check_window(w, *records, *window, nominal)  # type: ignore[arg-type]
    return chunks_read(seen)


def pages_asked(gw: GatewayStorage) -> list[int]:
    """The fine pages ``gw`` reads from TStorage from now on, in order (a list it fills)."""
    store = gw.series.store
    assert store is not None
    real_load = store.load_fine
    asked: list[int] = []

    def counted(s: Any, p: int, page: Any) -> Any:
        asked.append(p)
        return real_load(s, p, page)

    store.load_fine = counted  # type: ignore[method-assign]
    return asked


def test_fine_rows_of_a_chunk_changed_since_are_not_used(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """A correction from an outside writer lands in a chunk after its fine rows were
    saved: a gateway that saved the summaries again, and one that starts from them, read
    that chunk instead of trusting its old fine rows."""
    cid = fresh_cid()
    caps = T0 + np.arange(N, dtype=np.int64) * 10
    vals = np.cos(np.arange(N) / 13.0)
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals, CHUNK)
    where = 5000
    put(tstorage, cid, 6, 1, caps[where : where + 1], np.asarray([1e6]))
    vals = vals.copy()
    vals[where] = 1e6
    second = make_storage(config(tstorage, cid, fresh_cid(), CHUNK))
    t2 = TimeSeriesReads(second).target(KEY)
    second.series.save_summaries(t2)  # caught up with the correction, saved again
    third = make_storage(config(tstorage, cid, fresh_cid(), CHUNK))
    lo, hi = int(caps[2000]), int(caps[2000 + 120 * CHUNK])
    for gw in (second, third):
        # more buckets than chunks: every chunk's fine rows are asked for
        w, nominal = _aligned(TimeSeriesReads(gw), lo, hi, 300)
        check_window(w, caps, vals, lo, hi, nominal)  # type: ignore[arg-type]
        assert 1e6 in w.buckets.max.tolist()  # type: ignore[attr-defined]


@pytest.mark.parametrize("damage", ["directory crc", "page crc", "page generation"])
def test_a_fine_page_that_does_not_match_its_header_is_not_used(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int], damage: str
) -> None:
    cid = fresh_cid()
    caps = T0 + np.arange(N, dtype=np.int64) * 10
    vals = np.cos(np.arange(N) / 7.0) * np.arange(N)
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals, CHUNK)
    _, head = header(tstorage, cid)
    where = head["fine"]
    assert isinstance(where, list) and len(where) == 3
    if damage == "directory crc":
        head["fine"] = [where[0], where[1], where[2] ^ 1]
    else:  # the pages named by a directory that does not match them
        fine = directory(tstorage, cid, where)
        assert fine and all(f is not None for f in fine)
        if damage == "page crc":
            fine = [[g, n, c ^ 1, lo] for g, n, c, lo in fine]
        else:
            fine = [[(g + 5) % 65536, n, c, lo] for g, n, c, lo in fine]
        new_directory(tstorage, cid, head, fine)
    put_header(tstorage, cid, head)
    gw = make_storage(config(tstorage, cid, fresh_cid(), CHUNK))
    seen = chunk_reads(gw, cid)
    lo, hi = int(caps[1000]), int(caps[1000 + 150 * CHUNK])
    w, nominal = _aligned(TimeSeriesReads(gw), lo, hi, 150)
    check_window(w, caps, vals, lo, hi, nominal)  # type: ignore[arg-type]
    assert chunks_read(seen) > 100  # the chunks were read: no page was trusted


def test_fine_rows_lost_with_their_directory_are_made_again_from_the_chunks_read(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """The directory is damaged: the next gateway reads the chunks (and never claims rows it
    cannot find); it saves fine rows made from what it read, so the one after it reads only
    the window's ends again."""
    cid = fresh_cid()
    caps = T0 + np.arange(N, dtype=np.int64) * 10
    vals = np.sin(np.arange(N) / 5.0) + np.arange(N) % 3
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals, CHUNK)
    lose_fine_rows(tstorage, cid)
    lo, hi = int(caps[1000]), int(caps[1000 + 150 * CHUNK])
    second = make_storage(config(tstorage, cid, fresh_cid(), CHUNK))
    seen = chunk_reads(second, cid)
    w, nominal = _aligned(TimeSeriesReads(second), lo, hi, 150)
    check_window(w, caps, vals, lo, hi, nominal)  # type: ignore[arg-type]
    assert chunks_read(seen) > 100
    second.series.save_summaries(TimeSeriesReads(second).target(KEY), rewrite=True)
    text = config(tstorage, cid, fresh_cid(), CHUNK)
    assert first_read(make_storage, text, cid, (lo, hi), (caps, vals)) <= 6


def test_a_fine_page_write_that_fails_claims_nothing_and_a_later_save_writes_it(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """TStorage fails the write of the fine pages a gateway made from the chunks it read:
    that save is given up (logged, retried later) and nothing claims the pages, so the next
    gateway reads the chunks and answers exactly; once TStorage takes them again, the next
    save writes them and the gateway after it reads only the window's ends."""
    cid = fresh_cid()
    caps = T0 + np.arange(N, dtype=np.int64) * 10
    vals = np.cos(np.arange(N) / 3.0) * 7 + np.arange(N) % 5
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals, CHUNK)
    head = lose_fine_rows(tstorage, cid)
    lo, hi = int(caps[1000]), int(caps[1000 + 150 * CHUNK])
    second = make_storage(config(tstorage, cid, fresh_cid(), CHUNK))
    w, nominal = _aligned(TimeSeriesReads(second), lo, hi, 150)  # reads the chunks
    check_window(w, caps, vals, lo, hi, nominal)  # type: ignore[arg-type]
    store = second.series.store
    assert store is not None
    real_put = store.link.put
    failed: list[int] = []

    def refusing(records: Any, *args: Any, **kwargs: Any) -> Any:
        if any(int(key[3]) & 0xFFFF >= FINE_SLOT for key, _ in records):
            failed.append(len(records))
            raise TStorageUnavailable("TStorage answered ERROR (a test refuses fine pages)")
        return real_put(records, *args, **kwargs)

    store.link.put = refusing  # type: ignore[method-assign]
    t = TimeSeriesReads(second).target(KEY)
    second.series.save_summaries(t, rewrite=True)
    assert failed  # the pages were written, and refused
    acq, after = header(tstorage, cid)
    assert after["fine"] == head["fine"]  # no header claims pages that were not written
    text = config(tstorage, cid, fresh_cid(), CHUNK)
    assert first_read(make_storage, text, cid, (lo, hi), (caps, vals)) > 100
    store.link.put = real_put  # type: ignore[method-assign]
    second.series.save_summaries(t, rewrite=True)
    assert header(tstorage, cid)[0] > acq
    text = config(tstorage, cid, fresh_cid(), CHUNK)
    assert first_read(make_storage, text, cid, (lo, hi), (caps, vals)) <= 6


def test_fine_rows_waiting_for_their_page_count_in_the_byte_budget(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """Fine rows made from chunks read (their saved pages lost) wait for the next save;
    meanwhile ``index_budget_bytes`` counts them (the cache holds less), they take at most
    an eighth of it (more are made again when next needed), the accounting agrees with
    what is held, and the save empties them."""
    cid = fresh_cid()
    caps = T0 + np.arange(N, dtype=np.int64) * 10
    vals = np.sin(np.arange(N) / 9.0) * 3
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals, CHUNK)
    lose_fine_rows(tstorage, cid)
    budget = 160 * 1024
    text = config(tstorage, cid, fresh_cid(), CHUNK).replace(
        "index_save = 0", f"index_save = 3600\nindex_budget_bytes = {budget}"
    )
    gw = make_storage(text)
    reads = TimeSeriesReads(gw)
    most, pending = 0, 0
    for a in range(0, N - 20 * CHUNK, 10 * CHUNK):  # windows of 20 chunks, 40 buckets
        lo, hi = int(caps[a]) + 3, int(caps[a + 20 * CHUNK]) + 3
        w, nominal = _aligned(reads, lo, hi, 40)
        check_window(w, caps, vals, lo, hi, nominal)  # type: ignore[arg-type]
        mem = accounted(gw)
        most, pending = max(most, mem["held_bytes"]), max(pending, mem["fine_pending_bytes"])
    # rows of chunks that left the cache wait, up to their share (200 chunks' rows, 2 KiB
    # each, would take more)
    assert budget // FINE_PENDING_SHARE - 2048 < pending <= budget // FINE_PENDING_SHARE
    assert most <= budget
    # room asked for a whole budget: the cached chunks go, then the waiting rows, before
    # any series' summaries
    gw.series._evict(0, budget)
    mem = accounted(gw)
    assert mem["cached_chunks"] == 0 and mem["fine_pending_bytes"] == 0
    assert mem["summary_rows"] == N // CHUNK
    for a in (0, 60 * CHUNK):  # rows made again, and written by a save
        lo, hi = int(caps[a]) + 3, int(caps[a + 20 * CHUNK]) + 3
        check_window(_aligned(reads, lo, hi, 40)[0], caps, vals, lo, hi,
                     slice_edges(lo, hi, 40))  # type: ignore[arg-type]  # fmt: skip
    assert accounted(gw)["fine_pending_bytes"] > 0
    gw.series.save_summaries(reads.target(KEY))
    assert accounted(gw)["fine_pending_bytes"] == 0


def test_a_damaged_fine_page_is_asked_for_once(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """A page that fails its CRC is not used and not read again by the next rollup that
    would need it: that rollup reads its chunks at once, and answers exactly."""
    cid = fresh_cid()
    caps = T0 + np.arange(N, dtype=np.int64) * 10
    vals = np.cos(np.arange(N) / 4.0) + np.arange(N) % 7
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals, CHUNK)
    _, head = header(tstorage, cid)
    where = head["fine"]
    assert isinstance(where, list)
    fine = [[g, n, c ^ 1, lo] for g, n, c, lo in directory(tstorage, cid, where)]
    new_directory(tstorage, cid, head, fine)
    put_header(tstorage, cid, head)
    gw = make_storage(config(tstorage, cid, fresh_cid(), CHUNK))
    asked = pages_asked(gw)
    reads = TimeSeriesReads(gw)
    for a in (0, 100):  # two windows of 90 chunks in 120 buckets, both in page 0
        lo, hi = int(caps[a * CHUNK]) + 3, int(caps[(a + 90) * CHUNK]) + 3
        w, nominal = _aligned(reads, lo, hi, 120)
        check_window(w, caps, vals, lo, hi, nominal)  # type: ignore[arg-type]
        assert asked == [0]  # asked for by the first, not again


@pytest.mark.parametrize("split", [False, True])
def test_fine_pages_refused_while_a_build_streams_are_made_again_and_claimed_by_no_header(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
    split: bool,
) -> None:
    """TStorage refuses the fine pages a first build writes as it goes (more than 2,048
    chunks' rows waiting) and at its end: the build still answers exactly, lets go of the
    rows it could not write as it streamed, keeps those of the refused save for the next
    one (within their share of the budget), and saves no summaries that would claim them;
    once TStorage takes pages again, a save writes them all and the next gateway reads
    only the window's ends. ``split``: pages go in one PUT each, the first is taken and
    the others refused (a write cut into PUTs that fails part-way)."""
    cid = fresh_cid()
    n = CHUNK * 2400  # pages of 256 chunks: 9 complete before the last chunk's page
    caps = T0 + np.arange(n, dtype=np.int64) * 10
    vals = np.sin(np.arange(n) / 13.0) * 5 + np.arange(n) % 4
    put(tstorage, cid, 6, 1, caps, vals)
    gw = make_storage(config(tstorage, cid, fresh_cid(), CHUNK))
    store = gw.series.store
    assert store is not None
    real_put = store.link.put
    refused: list[bool] = []  # for each refused PUT: whether the build was streaming
    taken = [1 if split else 0]  # fine PUTs still let through
    if split:
        monkeypatch.setattr(persisted, "_FINE_PUT_BYTES", 1)

    def refusing(records: Any, *args: Any, **kwargs: Any) -> Any:
        if any(int(key[3]) & 0xFFFF >= FINE_SLOT for key, _ in records):
            if taken[0]:
                taken[0] -= 1
                return real_put(records, *args, **kwargs)
            refused.append(any(b.building for b in gw.series._boxes.values()))
            raise TStorageUnavailable("TStorage answered ERROR (a test refuses fine pages)")
        return real_put(records, *args, **kwargs)

    store.link.put = refusing  # type: ignore[method-assign]
    reads = TimeSeriesReads(gw)
    t = reads.target(KEY)
    assert reads.info(t)[0] == n  # the build
    assert True in refused and False in refused  # as it streamed, and at its end
    # the rows made for the save wait for the next one, within their share of the budget
    waiting = accounted(gw)["fine_pending_bytes"]
    assert 0 < waiting <= gw.series.memory()["budget_bytes"] // FINE_PENDING_SHARE
    lo, hi = int(caps[1000]), int(caps[1000 + 150 * CHUNK])
    w, nominal = _aligned(reads, lo, hi, 150)
    check_window(w, caps, vals, lo, hi, nominal)  # type: ignore[arg-type]
    with Channel("127.0.0.1", tstorage.port, BytesPayloadType(), timeout=5) as ch:
        res = ch.get(Key(INDEX_CID, 6, 1, cid << 32, -(2**63)),
                     Key(INDEX_CID + 1, 7, 2, (cid << 32) + 1, 2**63 - 1))  # fmt: skip
        assert res.is_ok() and not res.data  # no header: nothing claims the pages
    store.link.put = real_put  # type: ignore[method-assign]
    gw.series.save_summaries(t)
    _, head = header(tstorage, cid)
    assert isinstance(head["fine"], list)
    pages = directory(tstorage, cid, head["fine"])
    assert len(pages) == -(-n // CHUNK // 256)  # every page, the last chunk's too
    text = config(tstorage, cid, fresh_cid(), CHUNK)
    assert first_read(make_storage, text, cid, (lo, hi), (caps, vals)) <= 6


def test_fine_pages_read_are_kept_within_their_share_of_the_budget(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """Fine pages read for rollups are kept for the next (least recently used first out)
    within a sixteenth of ``index_budget_bytes``: reads over five pages answer exactly,
    ``/health``'s ``fine_page_bytes`` stays within that share, and a page let go is read
    again when next needed while the one kept is not."""
    cid = fresh_cid()
    n = CHUNK * 256 * 5
    caps = T0 + np.arange(n, dtype=np.int64) * 10
    vals = np.cos(np.arange(n) / 11.0) * 2 + np.arange(n) % 6
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals, CHUNK)
    budget = 12 * 1024 * 1024  # a sixteenth: 768 KiB, about one page of 256 chunks
    text = config(tstorage, cid, fresh_cid(), CHUNK).replace(
        "index_save = 0", f"index_save = 0\nindex_budget_bytes = {budget}"
    )
    gw = make_storage(text)
    asked = pages_asked(gw)
    reads = TimeSeriesReads(gw)
    limit = budget // 16
    for p in [0, 1, 2, 3, 4, 4, 0]:
        a = p * 256 * CHUNK + 20 * CHUNK
        lo, hi = int(caps[a]) + 3, int(caps[a + 200 * CHUNK]) + 3  # inside page p
        w, nominal = _aligned(reads, lo, hi, 150)
        check_window(w, caps, vals, lo, hi, nominal)  # type: ignore[arg-type]
        held = gw.series.memory()["fine_page_bytes"]
        assert held is not None and 0 < held <= limit
    # page 4 was kept for its second read; page 0, let go for the others, read again
    assert asked == [0, 1, 2, 3, 4, 0]
