"""The store's crash recovery and its receive-path helpers."""

from __future__ import annotations

import time
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from jivex_core.services import association
from jivex_core.store import Store
from jivex_core.store.dicomfile import split_file


def _ingest(store: Store, name: str):
    parts = split_file(Path(get_testdata_file(name)).read_bytes())
    return store.ingest(parts.data, parts.transfer_syntax, "TEST")


def test_a_rename_lost_to_a_crash_is_recovered(tmp_path):
    store = Store(tmp_path, min_free_bytes=0)
    result = _ingest(store, "CT_small.dcm")
    store.close()
    # A power failure after the index commit but before the rename reached
    # the disk: the complete file is still in incoming/, its place is empty.
    leftover = tmp_path / "incoming" / "0123.part"
    result.path.rename(leftover)

    reopened = Store(tmp_path, min_free_bytes=0)
    reopened.recover_incoming()
    try:
        assert result.path.exists()
        assert not leftover.exists()
        assert pydicom.dcmread(result.path).SOPInstanceUID == (
            result.record.SOPInstanceUID
        )
    finally:
        reopened.close()


def test_incomplete_leftovers_are_removed_and_nothing_else_touched(tmp_path):
    store = Store(tmp_path, min_free_bytes=0)
    kept = _ingest(store, "MR_small.dcm")
    before = kept.path.read_bytes()
    store.close()
    half = tmp_path / "incoming" / "half.part"
    half.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes()[:700])
    unacknowledged = tmp_path / "incoming" / "whole.part"
    unacknowledged.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())

    reopened = Store(tmp_path, min_free_bytes=0)
    reopened.recover_incoming()
    try:
        assert not half.exists() and not unacknowledged.exists()
        assert reopened.index.count_instances() == 1
        assert kept.path.read_bytes() == before
    finally:
        reopened.close()


def test_duplicates_keep_the_first_object(tmp_path):
    store = Store(tmp_path, min_free_bytes=0)
    try:
        first = _ingest(store, "CT_small.dcm")
        again = _ingest(store, "CT_small.dcm")
        assert first.stored and not again.stored
        assert again.path == first.path
        assert store.index.count_instances() == 1
        assert not list((tmp_path / "incoming").iterdir())
    finally:
        store.close()


def test_adaptive_poll_is_fast_after_work_and_slow_when_idle(monkeypatch):
    clock = [100.0]
    slept: list[float] = []

    def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(time, "sleep", fake_sleep)
    poll = association.AdaptivePoll(fast=0.0002, streak=5, busy=0.0003)

    poll.sleep(0.001)  # first call: the thread was busy before it
    clock[0] += 0.002  # two milliseconds of work
    for _ in range(10):
        poll.sleep(0.001)
    assert slept[:6] == [0.0002] * 6
    assert slept[-4:] == [0.001] * 4  # idle streak reached: back to 1 ms
    assert poll.monotonic is time.monotonic  # the rest of `time` passes through


def test_a_complete_copy_replaces_one_that_arrived_cut_short(tmp_path):
    raw = Path(get_testdata_file("MR_small.dcm")).read_bytes()
    parts = split_file(raw)
    store = Store(tmp_path, min_free_bytes=0)
    try:
        cut = store.ingest(parts.data[:-1000], parts.transfer_syntax, "TEST")
        assert cut.stored and cut.incomplete
        again = store.ingest(parts.data[:-1000], parts.transfer_syntax, "TEST")
        assert not again.stored  # another short copy changes nothing
        whole = store.ingest(parts.data, parts.transfer_syntax, "TEST")
        assert whole.stored and not whole.incomplete
        assert store.index.count_instances() == 1
        assert whole.path.read_bytes().endswith(parts.data)
        assert pydicom.dcmread(whole.path).pixel_array.shape == (64, 64)
        rows = store.index.listing("instance", tmp_path)
        assert rows[0]["incomplete"] is False
        # A short copy after the complete one is a plain duplicate.
        late = store.ingest(parts.data[:-10], parts.transfer_syntax, "TEST")
        assert not late.stored
        assert whole.path.read_bytes().endswith(parts.data)
    finally:
        store.close()
