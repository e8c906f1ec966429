#!/usr/bin/env python3
"""One long series: gateway memory and first answers, with chunk summaries against the
whole-series index.

Loads one ``struct:<d`` series of ``--records`` records (1 ms apart) with numpy PUTs into a
TStorage server process, and a Dict meter of 16 fields (1,000 records each), then for each
design runs the gateway as a process on it and measures, through ``znsocket.Client``:

* ``len``, ``lst[i]`` at a random ``i``, ``lst[-1000:]``, the Dict's 16 latest values,
  ``ts:latest``, and ``ts:range`` with 1,000 buckets over the whole series and over a
  random 1% window, as asked by default (``align`` left out, i.e. ``"auto"``: edges moved
  to row boundaries once the window holds 512 records per bucket) and with equal slices
  (``align="equal"``): the first call in a fresh gateway, then warm (median of
  ``--repeats``);
* the gateway's resident memory (VmRSS) after them, and its peak (VmHWM), with what its
  indexes hold against ``[tstorage] index_budget_bytes`` by its own count (``/health``);
* for the summaries, the one-time build (``gateway index build``: it reads the series once
  and saves its summaries, in records/s), then a fresh gateway that starts from them;
* then, while that gateway still serves the series, an outside writer: one record PUT with a
  plain ``tstorage_client`` ``Channel`` into the middle of the series (a fresh cap between two
  records), and the time until ``len``, ``lst[i]`` at its position and a 10-bucket
  ``ts:range`` around it all show it, and whether each shows it exactly.

Every answer is checked against the records the bench wrote: ``lst[i]`` against the value
at ``i``, the ``ts:range`` buckets (the whole 1% window; three buckets of the whole series)
against numpy over those records (aligned ones, those that report ``t_end``, cut at the
edges they report, which must lie within a quarter of a bucket of the equal ones). A failed check is reported under ``checks``, not raised.
Records added by the outside writer are kept in ``DIR/outside.json``, so a kept data
directory stays checkable run after run (each run adds one record per design).

The designs: ``summaries`` (this tree) and ``whole`` (the whole-series in-memory index, run
from another checkout given by ``--old-tree``; skipped with ``--old-tree ''`` or when it
would not fit). Each answers the default request as its tree does (equal slices in trees
before ``align`` had ``"auto"``, which also refuse ``align="equal"``: those rows then
report the refusal). TStorage runs as its own process in both cases (as the gateway's embedded
server does by default), so the gateway's memory is measured alone.

Usage::

    .venv/bin/python bench/scale_bench.py --records 10000000 --old-tree /path/to/old/checkout
    .venv/bin/python bench/scale_bench.py --records 100000000 --data /work/scale-data --keep
    .venv/bin/python bench/scale_bench.py --records 10000000 --build-only /path/to/old/checkout

``--index-cid N`` starts the gateway from the summaries an earlier run saved under that
cid (its output names it) instead of building them again; ``--extra`` adds lines to the
gateway's ``[tstorage]`` section (e.g. ``index_budget_bytes = 268435456``).

``--build-only`` times only the one-time build, by this tree and by each other checkout
given, taking turns (``--repeats`` builds each).

``--windows 0.0001,0.001,0.01`` adds the first 1,000-bucket ``ts:range`` over random
windows of those fractions of the series, by default and with equal slices, each in a
fresh gateway started from the run's summaries (``--window-rounds`` windows per size);
``--before TREE`` adds the same default request to the gateway of another checkout (e.g.
the commit before a change), the trees taking turns over the same windows.

With ``--data DIR --keep`` a directory loaded by an earlier run (it holds a ``loaded`` file
with its record count, which must equal ``--records``) is measured without loading again.
The summaries' ``index_cid`` of the run is in the output: a fresh gateway given that cid
(e.g. ``bench/dashboard_bench.mjs --index-cid``) starts from them.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import znsocket  # noqa: E402
from gateway.config import ServerConfig, TStorageConfig  # noqa: E402
from gateway.timeseries.downsample import slice_edges  # noqa: E402
from gateway.timeseries.proxy import Downsampled, TimeSeries  # noqa: E402
from gateway.timeseries.reads import ALIGN_SHIFT  # noqa: E402
from tests._config_text import meter_rules  # noqa: E402
from tests._servers import VENV_BIN, ServerProcess, spawn  # noqa: E402
from tstorage_client.channel import Channel  # noqa: E402
from tstorage_client.payload_type import NumpyPayloadType  # noqa: E402
from tstorage_client.timestamp import EPOCH_OFFSET_NS  # noqa: E402

CID, MID, MOID, DICT_MID, FIELDS = 1, 1, 1, 2, 16
T0 = 800_000_000 * 10**9  # TStorage ns of record 0
STEP = 10**6  # 1 ms between records
BATCH = 2_000_000
OUTSIDE_FILE = "outside.json"
CALL_TIMEOUT = 600  # s: the gateway's request timeout and the client's


def put_records(
    port: int, mid: int, moid: int, caps: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
) -> None:
    """One numpy PUT of ``struct:<d`` records, as any ``tstorage_client`` program writes."""
    with Channel("127.0.0.1", port, NumpyPayloadType("<f8"), timeout=600) as ch:
        res = ch.put(
            {  # type: ignore[arg-type]  # numpy payload types take a dict of columns
                "cid": np.full(len(caps), CID, dtype=np.int32),
                "mid": np.full(len(caps), mid, dtype=np.int64),
                "moid": np.full(len(caps), moid, dtype=np.int32),
                "cap": caps,
                "v0": values,
            }
        )
        if not res.is_ok():
            raise RuntimeError(f"PUT failed: {res.status}")


def put_series(port: int, mid: int, moid: int, start: int, n: int) -> None:
    for a in range(0, n, BATCH):
        b = min(a + BATCH, n)
        i = np.arange(start + a, start + b, dtype=np.int64)
        put_records(port, mid, moid, T0 + i * STEP, np.sin(i / 1000.0))


def load(port: int, records: int) -> float:
    t0 = time.perf_counter()
    for a in range(0, records, 50_000_000):
        put_series(port, MID, MOID, a, min(50_000_000, records - a))
        print(f"  loaded {min(a + 50_000_000, records):,} records", file=sys.stderr)
    for f in range(FIELDS):
        put_series(port, DICT_MID, f, 0, 1000)
    return time.perf_counter() - t0


@dataclass
class Series:
    """The records of the measured series, to check answers against: ``records`` loaded by
    :func:`load` (record ``i`` at ``T0 + i * STEP``, value ``sin(i / 1000)``) plus the ones
    the outside writer added, each between two loaded records (``outside``: sorted
    ``(cap, value)``)."""

    records: int
    outside: list[tuple[int, float]] = field(default_factory=list)

    def __len__(self) -> int:
        return self.records + len(self.outside)

    def position(self, cap: int) -> int:
        """Index in the List of the first record at or after ``cap``."""
        base = min(self.records, max(0, -(-(cap - T0) // STEP)))
        return base + bisect.bisect_left(self.outside, (cap, -math.inf))

    def value_at(self, i: int) -> float:
        for j, (cap, value) in enumerate(self.outside):
            at = (cap - T0) // STEP + 1 + j  # after its loaded neighbour and earlier outsiders
            if i == at:
                return value
            if i < at:
                return float(np.sin((i - j) / 1000.0))
        return float(np.sin((i - len(self.outside)) / 1000.0))

    def between(self, lo: int, hi: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Caps and values of the records with ``lo <= cap < hi``."""
        a = min(self.records, max(0, -(-(lo - T0) // STEP)))
        b = min(self.records, max(0, -(-(hi - T0) // STEP)))
        i = np.arange(a, b, dtype=np.int64)
        caps, values = T0 + i * STEP, np.sin(i / 1000.0)
        inside = [(c, v) for c, v in self.outside if lo <= c < hi]
        if inside:
            at = np.searchsorted(caps, [c for c, _ in inside])
            caps = np.insert(caps, at, [c for c, _ in inside])
            values = np.insert(values, at, [v for _, v in inside])
        return caps, values

    @property
    def last_cap(self) -> int:
        return max([T0 + (self.records - 1) * STEP] + [c for c, _ in self.outside])


def unix_ns(cap: int) -> int:
    """A TStorage cap as the unix ns ``TimeSeries`` takes."""
    return cap + EPOCH_OFFSET_NS


def bucket_errors(
    got: Downsampled, series: Series, lo: int, hi: int, count: int, which: list[int] | None
) -> list[str]:
    """How ``got`` (``ts:range`` of ``[lo, hi)`` in ``count`` buckets) differs from numpy over
    the records; ``which``: the buckets to check (all when ``None``)."""
    edges = slice_edges(lo, hi, count)
    starts = got.t.astype("datetime64[ns]").astype(np.int64) - EPOCH_OFFSET_NS
    errors = []
    for k in range(count) if which is None else which:
        caps, values = series.between(int(edges[k]), int(edges[k + 1]))
        hit = np.flatnonzero(starts == edges[k])
        if not len(caps):
            if len(hit):
                errors.append(f"bucket {k}: {got.n[hit[0]]} records, expected none")
            continue
        if not len(hit):
            errors.append(f"bucket {k} missing, expected {len(caps)} records")
            continue
        j = int(hit[0])
        want = (len(caps), values.min(), values.max(), values.mean(), values[-1])
        have = (int(got.n[j]), got.min[j], got.max[j], got.mean[j], got.last[j])
        if (
            have[0] != want[0]
            or have[1] != want[1]
            or have[2] != want[2]
            or not math.isclose(have[3], want[3], rel_tol=1e-9, abs_tol=1e-12)
            or have[4] != want[4]
        ):
            errors.append(f"bucket {k}: (n, min, max, mean, last) = {have}, numpy {want}")
    return errors


def aligned_errors(
    got: Downsampled, series: Series, lo: int, hi: int, count: int, which: list[int] | None
) -> list[str]:
    """How ``got`` (an aligned ``ts:range`` of ``[lo, hi)``, ``count`` buckets) differs from
    numpy over the records cut at the edges it reports; ``which``: the buckets to check, by
    position in the answer (all when ``None``)."""
    if got.t_end is None or got.t_first is None or got.t_last is None or got.first is None:
        return ["not an aligned answer (no t_end)"]
    edges = slice_edges(lo, hi, count)
    shift = int(np.diff(edges).min() * ALIGN_SHIFT)

    def caps_of(t: Any) -> npt.NDArray[np.int64]:
        return t.astype("datetime64[ns]").astype(np.int64) - EPOCH_OFFSET_NS

    starts, ends = caps_of(got.t), caps_of(got.t_end)
    firsts, lasts = caps_of(got.t_first), caps_of(got.t_last)
    errors = []
    for edge in np.r_[starts, ends]:
        j = int(np.argmin(np.abs(edges - edge)))
        if abs(int(edges[j]) - int(edge)) > (0 if j in (0, count) else shift):
            errors.append(f"edge {int(edge)} is {int(edge) - int(edges[j])} ns off bucket edge {j}")
    if bool((ends[:-1] > starts[1:]).any()):
        errors.append("buckets overlap")
    for j in range(len(starts)) if which is None else which:
        caps, values = series.between(int(starts[j]), int(ends[j]))
        want = (len(caps), values.min(), values.max(), values.mean(), values[0], values[-1],
                int(caps[0]), int(caps[-1]))  # fmt: skip
        have = (int(got.n[j]), got.min[j], got.max[j], got.mean[j], got.first[j], got.last[j],
                int(firsts[j]), int(lasts[j]))  # fmt: skip
        if have[:3] + have[4:] != want[:3] + want[4:] or not math.isclose(
            have[3], want[3], rel_tol=1e-9, abs_tol=1e-12
        ):
            errors.append(f"bucket {j}: (n, min, max, mean, first, last, t0, t1) = {have}, "
                          f"numpy {want}")  # fmt: skip
    return errors


def config_text(port: int, generic_cid: int, extra: str = "") -> str:
    # a first read of a huge series may take minutes on a cold gateway: measured, not cut
    return textwrap.dedent(
        f"""
        [server]
        request_timeout = {CALL_TIMEOUT}

        [tstorage]
        host = "127.0.0.1"
        port = {port}
        timeout = {CALL_TIMEOUT}
        {extra}

        [generic]
        cid = {generic_cid}

        """
    ) + meter_rules(CID)


def memory(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = round(int(value.split()[0]) / 1024, 1)
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return round((time.perf_counter() - t0) * 1e3, 2), out


WINDOW_BUCKETS = 1000


def workload(address: str, series: Series, repeats: int, seed: int) -> dict[str, Any]:
    """First calls (in the order listed), then warm medians; every answer checked."""
    rng = random.Random(seed)
    c = znsocket.Client.from_url(address, call_timeout=CALL_TIMEOUT)
    try:
        lst = znsocket.List(c, f"meters/{MID}/{MOID}")
        d = znsocket.Dict(c, f"meters/{DICT_MID}")
        ts = TimeSeries(c, f"meters/{MID}/{MOID}")
        n = len(series)
        first_cap, hi = T0, series.last_cap + 1  # the window of an open ts:range
        span = series.records * STEP
        w0 = T0 + rng.randrange(0, span - span // 100)
        w1 = w0 + span // 100
        # the whole series' buckets checked against numpy: the first, the last, one at random
        sample = [0, WINDOW_BUCKETS - 1, rng.randrange(WINDOW_BUCKETS)]

        def index() -> tuple[int, Any]:
            i = rng.randrange(n)
            return i, lst[i]

        def whole(align: str | None = None) -> Downsampled:  # None: the default
            return ts.range(buckets=WINDOW_BUCKETS, align=align)

        def window(align: str | None = None) -> Downsampled:
            return ts.range(unix_ns(w0), unix_ns(w1), buckets=WINDOW_BUCKETS, align=align)

        def check_index(r: tuple[int, Any]) -> list[str]:
            want = series.value_at(r[0])
            return [] if r[1] == want else [f"lst[{r[0]}] = {r[1]!r}, expected {want!r}"]

        def check_whole(r: Downsampled) -> list[str]:
            if r.t_end is None:  # equal slices
                errors = bucket_errors(r, series, first_cap, hi, WINDOW_BUCKETS, sample)
            else:
                at = [0, len(r.t) - 1, rng.randrange(len(r.t))]
                errors = aligned_errors(r, series, first_cap, hi, WINDOW_BUCKETS, at)
            total = int(r.n.sum())
            return errors + ([] if total == n else [f"{total} records in all, expected {n}"])

        def check_window(r: Downsampled) -> list[str]:
            return window_errors(r, series, w0, w1)

        calls: dict[str, tuple[Callable[[], Any], Callable[[Any], list[str]]]] = {
            "len": (lambda: len(lst), lambda r: [] if r == n else [f"len {r}, expected {n}"]),
            "lst[i]": (index, check_index),
            "lst[-1000:]": (
                lambda: lst[-1000:],
                lambda r: [] if r == [series.value_at(i) for i in range(n - 1000, n)]
                else ["lst[-1000:] differs from the last 1,000 records"],
            ),
            "dict_16": (
                lambda: dict(d.items()),
                lambda r: [] if len(r) == FIELDS else [f"{len(r)} fields, expected {FIELDS}"],
            ),
            "ts:latest": (
                lambda: ts.latest(1),
                lambda r: [] if list(r.v) == [series.value_at(n - 1)] else [f"latest {r.v}"],
            ),
            # the default first: aligned, it reads almost no records, so it leaves the cache
            # as it was for the equal slices after it
            "range_1000_whole": (whole, check_whole),
            "range_1000_1pct": (window, check_window),
            "range_1000_whole_equal": (lambda: whole("equal"), check_whole),
            "range_1000_1pct_equal": (lambda: window("equal"), check_window),
        }  # fmt: skip
        first: dict[str, float | None] = {}
        warm: dict[str, float | None] = {}
        failed: dict[str, list[str]] = {}
        for name, (call, check) in calls.items():
            try:
                first[name], answer = timed(call)
            except Exception as exc:  # one read failing leaves the others to measure
                first[name], failed[name] = None, [f"{type(exc).__name__}: {exc}"]
                continue
            if errors := check(answer):
                failed[name] = errors[:5]
        for name, (call, check) in calls.items():
            times = []
            try:
                for _ in range(repeats):
                    ms, answer = timed(call)
                    times.append(ms)
                    # the checks of the whole series cost a numpy pass: the first answer's only
                    if name in ("lst[i]", "len") and (errors := check(answer)):
                        failed.setdefault(name, errors[:5])
            except Exception as exc:
                failed.setdefault(name, []).append(f"warm: {type(exc).__name__}: {exc}")
            warm[name] = round(statistics.median(times), 2) if times else None
        return {"first_ms": first, "warm_ms": warm, "checks": failed or "all exact"}
    finally:
        c.close()


def outside_write(address: str, ts_port: int, series: Series, data: Path) -> dict[str, Any]:
    """One record PUT by a plain ``tstorage_client`` writer into the middle of the series,
    between two records, while the gateway at ``address`` serves it: the time from the PUT's
    answer until ``len``, ``lst[i]`` at its position and the ``ts:range`` bucket holding it
    each show it, and whether each shows it exactly."""
    limits = {
        "tstorage.max_staleness_s": TStorageConfig.model_fields["max_staleness"].default,
        "server.follow_interval_s": ServerConfig.model_fields["follow_interval"].default,
    }
    k = series.records // 2
    cap = T0 + k * STEP + STEP // 2 + len(series.outside)  # fresh: no record holds it
    value = 2.0 + len(series.outside) / 1000  # above every sin(): the bucket's max changes
    lo, hi, count = cap - 500 * STEP, cap + 500 * STEP, 10
    bucket = int(np.searchsorted(slice_edges(lo, hi, count), cap, side="right")) - 1
    c = znsocket.Client.from_url(address, call_timeout=CALL_TIMEOUT)
    try:
        lst = znsocket.List(c, f"meters/{MID}/{MOID}")
        ts = TimeSeries(c, f"meters/{MID}/{MOID}")
        at = series.position(cap)
        before = {"len": len(lst), "lst[i]": lst[at]}
        rows = ts.range(unix_ns(lo), unix_ns(hi), buckets=count, align="equal")
        starts = rows.t.astype("datetime64[ns]").astype(np.int64) - EPOCH_OFFSET_NS
        j = int(np.flatnonzero(starts == slice_edges(lo, hi, count)[bucket])[0])
        b0 = (
            int(rows.n[j]),
            float(rows.min[j]),
            float(rows.max[j]),
            float(rows.mean[j] * rows.n[j]),
        )
        t_put = time.perf_counter()
        put_records(ts_port, MID, MOID, np.array([cap], np.int64), np.array([value]))
        put_ms = round((time.perf_counter() - t_put) * 1e3, 2)
        t_acked = time.perf_counter()
        # what the data now holds, kept with a kept data directory before anything can fail
        series.outside = sorted([*series.outside, (cap, value)])
        (data / OUTSIDE_FILE).write_text(json.dumps(series.outside))
        shown_ms: dict[str, float] = {}
        exact: dict[str, bool | str] = {}
        polls = 0
        while len(shown_ms) < 3 and time.perf_counter() - t_acked < 60:
            polls += 1
            if "len" not in shown_ms and (got := len(lst)) != before["len"]:
                shown_ms["len"] = round((time.perf_counter() - t_acked) * 1e3, 2)
                exact["len"] = got == before["len"] + 1 or f"{before['len']} -> {got}"
            if "lst[i]" not in shown_ms and (got := lst[at]) != before["lst[i]"]:
                shown_ms["lst[i]"] = round((time.perf_counter() - t_acked) * 1e3, 2)
                exact["lst[i]"] = got == value or f"lst[{at}] = {got!r}, PUT {value!r}"
            if "ts:range" not in shown_ms:
                rows = ts.range(unix_ns(lo), unix_ns(hi), buckets=count, align="equal")
                if int(rows.n[j]) != b0[0]:
                    shown_ms["ts:range"] = round((time.perf_counter() - t_acked) * 1e3, 2)
                    b1 = (int(rows.n[j]), float(rows.min[j]), float(rows.max[j]))
                    sum1 = float(rows.mean[j]) * b1[0]
                    ok = (
                        b1 == (b0[0] + 1, min(b0[1], value), max(b0[2], value))
                        and math.isclose(sum1, b0[3] + value, rel_tol=1e-9)
                        and not bucket_errors(rows, series, lo, hi, count, None)
                    )
                    exact["ts:range"] = ok or f"bucket (n, min, max, sum) {b0} -> {(*b1, sum1)}"
            time.sleep(0.005)
        return {
            "cap": cap,
            "position": at,
            "value": value,
            "put_ms": put_ms,
            "shown_after_put_ms": shown_ms,
            "exact": exact,
            "polls": polls,
            "within": {name: all(ms <= s * 1e3 for ms in shown_ms.values())
                       for name, s in limits.items()} if len(shown_ms) == 3 else False,
            **limits,
        }  # fmt: skip
    finally:
        c.close()


def gateway(config: Path, tree: Path) -> ServerProcess:
    env = {"PYTHONPATH": str(tree)}
    return spawn(
        ["gateway", "run", "--config", str(config), "--port", "0", "--log-level", "WARNING"],
        env=env,
        cwd=tree,
        timeout=120,
    )


def one_time_build(config: Path, tree: Path) -> dict[str, Any]:
    """``gateway index build`` of ``tree`` with ``config``: it reads the series once and
    saves its summaries (the command first finds the series, as the dashboard does)."""
    out: dict[str, Any] = {}
    t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [str(VENV_BIN / "gateway"), "index", "build", "--config", str(config)],
        env=dict(os.environ, PYTHONPATH=str(tree)),
        cwd=tree,
        capture_output=True,
        text=True,
    )
    build_s = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"index build failed: {done.stderr}")
    out["build_command_s"] = round(build_s, 2)  # finding the series, then building
    # the command's own CPU (both steps): unlike its duration, not the machine's load
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    out["build_command_cpu_s"] = round(cpu, 2)
    # the build of the series alone, as the gateway logs it
    found = re.search(rf"built summaries of cid {CID} mid {MID} moid {MOID}: "
                      r"(\d+) records in ([\d.]+) s", done.stderr)  # fmt: skip
    if found:
        out["build_s"] = float(found.group(2))
        out["build_records_per_s"] = round(int(found.group(1)) / float(found.group(2)))
    return out


def run_design(
    name: str,
    tree: Path,
    ts_port: int,
    tmp: Path,
    data: Path,
    series: Series,
    repeats: int,
    gcid: int,
    index_cid: int = 0,
    tstorage_extra: str = "",
) -> dict[str, Any]:
    config = tmp / f"{name}.toml"
    out: dict[str, Any] = {}
    # summaries of an earlier run on kept data are reused only when asked: else a cid of
    # this run's own
    extra = ""
    if name == "summaries":
        out["index_cid"] = index_cid or gcid + 500_000
        extra = f"index_cid = {out['index_cid']}\n{tstorage_extra}"
    config.write_text(config_text(ts_port, gcid, extra))
    if name == "summaries" and not index_cid:
        # the one-time build, ahead of time: the gateways below start from its summaries
        out.update(one_time_build(config, tree))
    with gateway(config, tree) as gw:
        address = f"znsocket://127.0.0.1:{gw.port}"
        try:
            out.update(workload(address, series, repeats, series.records))
        except Exception as exc:  # e.g. a first read so long that the client gave up
            out["error"] = f"{type(exc).__name__}: {exc}"
        out["memory_mb"] = memory(gw.pid)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{gw.port}/health", timeout=30) as res:
                out["index_memory"] = json.loads(res.read()).get("index")
        except OSError as exc:
            out["index_memory"] = f"{type(exc).__name__}: {exc}"
        try:
            out["outside_writer"] = outside_write(address, ts_port, series, data)
        except Exception as exc:
            out["outside_writer"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def window_errors(r: Downsampled, series: Series, lo: int, hi: int) -> list[str]:
    """How a 1,000-bucket answer over ``[lo, hi)`` differs from the records (aligned when
    it reports ``t_end``, else equal slices)."""
    if r.t_end is None:
        return bucket_errors(r, series, lo, hi, WINDOW_BUCKETS, None)
    return aligned_errors(r, series, lo, hi, WINDOW_BUCKETS, None)


def window_sweep(
    config: Path,
    tree: Path,
    series: Series,
    fractions: list[float],
    rounds: int,
    seed: int,
    before: Path | None = None,
) -> dict[str, Any]:
    """First 1,000-bucket ``ts:range`` over random windows of each size (a fraction of the
    series), by default and with equal slices (and by default through ``before``'s
    gateway), each read by a fresh gateway started from the saved summaries (nothing
    cached), every answer checked against the records."""
    rng = random.Random(seed)
    span = series.records * STEP
    out: dict[str, Any] = {}
    variants: list[tuple[str, Path, str | None]] = [("default", tree, None)]
    if before is not None:
        variants.append(("before", before, None))
    variants.append(("equal", tree, "equal"))
    for fraction in fractions:
        width = max(STEP, int(span * fraction))
        row: dict[str, Any] = {"records": width // STEP}
        starts = [T0 + rng.randrange(0, span - width + 1) for _ in range(rounds)]
        for name, where, align in variants:
            times: list[float] = []
            errors: list[str] = []
            aligned = 0
            for w0 in starts:
                with gateway(config, where) as gw:
                    c = znsocket.Client.from_url(
                        f"znsocket://127.0.0.1:{gw.port}", call_timeout=CALL_TIMEOUT
                    )
                    try:
                        ts = TimeSeries(c, f"meters/{MID}/{MOID}")
                        t0 = time.perf_counter()
                        got = ts.range(
                            unix_ns(w0),
                            unix_ns(w0 + width),
                            buckets=WINDOW_BUCKETS,
                            **({"align": align} if align else {}),
                        )
                        ms = round((time.perf_counter() - t0) * 1e3, 2)
                    finally:
                        c.close()
                times.append(ms)
                errors += window_errors(got, series, w0, w0 + width)
                aligned += got.t_end is not None
            row[name] = {
                "first_ms": times,
                "aligned": f"{aligned} of {len(starts)}",
                "checks": errors[:5] or "all exact",
            }
        out[f"{fraction:g}"] = row
        print(f"  window {fraction:g}: {row}", file=sys.stderr)
    return out


def builds(trees: list[Path], ts_port: int, tmp: Path, repeats: int) -> dict[str, Any]:
    """Build rates of the one-time build by each tree, the trees taking turns (a loaded
    machine then weighs on each alike); each build saves summaries of its own."""
    rates: dict[str, list[int]] = {str(tree): [] for tree in trees}
    cpus: dict[str, list[float]] = {str(tree): [] for tree in trees}
    for r in range(repeats):
        for i, tree in enumerate(trees):
            gcid = 2_000_000_000 + int(time.time()) % 1_000_000 + 10 * r + i
            config = tmp / f"build-{r}-{i}.toml"
            config.write_text(config_text(ts_port, gcid, f"index_cid = {gcid + 500_000}"))
            got = one_time_build(config, tree)
            rates[str(tree)].append(got.get("build_records_per_s", 0))
            cpus[str(tree)].append(got["build_command_cpu_s"])
            print(f"  {tree}: {got}", file=sys.stderr)
    return {
        tree: {
            "build_records_per_s": r,
            "median": round(statistics.median(r)),
            "build_command_cpu_s": cpus[tree],
        }
        for tree, r in rates.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--old-tree", default="", help="checkout of the whole-series design")
    parser.add_argument("--old-max", type=int, default=100_000_000, help="skip it above this")
    parser.add_argument("--data", help="TStorage data directory (kept with --keep)")
    parser.add_argument("--keep", action="store_true", help="keep and reuse --data")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument(
        "--index-cid", type=int, default=0, help="start from summaries saved under this cid"
    )
    parser.add_argument("--extra", default="", help="lines added to [tstorage] (\\n apart)")
    parser.add_argument(
        "--windows",
        default="",
        help="also a sweep of first reads over random windows of these sizes (fractions of "
        "the series, comma-separated), each in a fresh gateway",
    )
    parser.add_argument("--window-rounds", type=int, default=3, help="windows per size")
    parser.add_argument(
        "--before", default="", help="checkout whose gateway also answers the window sweep"
    )
    parser.add_argument(
        "--build-only",
        nargs="*",
        metavar="TREE",
        help="only the one-time summary build, by this tree and each TREE given (other "
        "checkouts), taking turns, --repeats times each",
    )
    args = parser.parse_args()
    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="scale-bench-"))
    loaded = (data / "loaded").exists() and args.keep
    if loaded and int((data / "loaded").read_text()) != args.records:
        parser.error(f"{data} holds {(data / 'loaded').read_text()} records, not --records")
    data.mkdir(parents=True, exist_ok=True)
    outside = data / OUTSIDE_FILE
    series = Series(
        args.records,
        [(int(c), float(v)) for c, v in json.loads(outside.read_text())] if loaded
        and outside.exists() else [],
    )  # fmt: skip
    result: dict[str, Any] = {"records": args.records, "outside_records": len(series.outside)}
    ts = spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"], timeout=600)
    try:
        if not loaded:
            result["load_s"] = round(load(ts.port, args.records), 1)
            (data / "loaded").write_text(str(args.records))
        with tempfile.TemporaryDirectory(prefix="scale-bench-cfg-") as tmp:
            designs = [("summaries", ROOT)] if args.build_only is None else []
            if args.build_only is not None:
                trees = [ROOT, *map(Path, args.build_only)]
                result["builds"] = builds(trees, ts.port, Path(tmp), args.repeats)
            elif args.old_tree and args.records <= args.old_max:
                designs.append(("whole", Path(args.old_tree)))
            for i, (name, tree) in enumerate(designs):
                print(f"  measuring {name}", file=sys.stderr)
                # a generic cid per run: the gateways start with nothing of an earlier run
                gcid = 2_000_000_000 + int(time.time()) % 1_000_000 + i
                result[name] = run_design(
                    name, tree, ts.port, Path(tmp), data, series, args.repeats, gcid,
                    args.index_cid, args.extra.replace("\\n", "\n"),
                )  # fmt: skip
            if args.windows and args.build_only is None:
                config = Path(tmp) / "summaries.toml"  # the summaries' run: its index_cid
                fractions = [float(f) for f in args.windows.split(",")]
                result["windows"] = window_sweep(
                    config, ROOT, series, fractions, args.window_rounds, args.records,
                    Path(args.before) if args.before else None,
                )  # fmt: skip
    finally:
        ts.stop()
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
