"""Training-log layout, encoding and the streaming readers (dedupe, join) over an in-memory bucket."""

import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from adserve.core.vocabulary import EventType
from adserve.outcomes.logs import (
    LoggedOutcome,
    LogKind,
    Partition,
    ReadStats,
    count_rows_at_most,
    decode_object,
    encode_object,
    hours,
    log_row,
    read_decisions,
    read_joined,
    read_outcomes,
)

from devstack.fakes import InMemoryLogStore
from tests.support.log_store import ListingLogStore, write_logs
from tests.support.record_messages import NOW, decision, outcome


def test_partition_keys_follow_the_documented_layout() -> None:
    partition = Partition.of(LogKind.OUTCOMES, datetime(2026, 11, 25, 13, 59, 59, tzinfo=UTC))
    key = partition.object_key(["m-2", "m-1"])
    assert key.startswith("logs/outcomes/dt=2026-11-25/hour=13/")
    assert key.endswith(".jsonl.gz")
    assert key == partition.object_key(["m-1", "m-2"])  # the set of messages names the object, not their order
    assert key != partition.object_key(["m-1"])
    assert key.endswith("-2rows.jsonl.gz")  # one row per message: listing alone bounds a range's rows


def test_rows_are_counted_by_listing_and_objects_named_without_a_count_are_read() -> None:
    # Given three objects in one hour (two named with their counts, one named before names carried it), one in
    # the next hour, and keys that are not log objects
    store = ListingLogStore()
    write_logs(store, decision(decision_id="d-1"), decision(decision_id="d-2"), name="batch-1")
    write_logs(store, decision(decision_id="d-1"), name="batch-2")  # a redelivered copy: counted, as names can't tell
    prefix = Partition.of(LogKind.DECISIONS, NOW).prefix
    store.objects[f"{prefix}0123456789abcdef0123456789abcdef.jsonl.gz"] = encode_object(['{"a":1}', '{"b":2}'])
    store.objects[f"{prefix}not-gzip.jsonl.gz"] = b"plain text"
    store.objects[f"{prefix}notes.txt"] = b"not a log object"
    write_logs(store, decision(decision_id="d-3", decided_at=NOW + timedelta(hours=1)), name="batch-3")
    # When the rows of the first hour, then of both, are counted
    # Then names count what they say, the unnamed object is read, and nothing else is
    assert count_rows_at_most(store, LogKind.DECISIONS, NOW, NOW) == 2 + 1 + 2
    assert store.read == [f"{prefix}0123456789abcdef0123456789abcdef.jsonl.gz", f"{prefix}not-gzip.jsonl.gz"]
    assert count_rows_at_most(store, LogKind.DECISIONS, NOW, NOW + timedelta(hours=1)) == 6
    assert count_rows_at_most(store, LogKind.OUTCOMES, NOW, NOW + timedelta(hours=1)) == 0
    # and the bound holds: the readers return no more rows than it
    assert len(list(read_decisions(store, NOW, NOW + timedelta(hours=1)))) == 3


def test_an_outcome_row_is_the_logged_outcome_of_its_event_byte_for_byte() -> None:
    """The row is serialized from the event minus its listener fields; it must be what LoggedOutcome writes."""
    for event in (outcome(), outcome(listener=None, session="", event_type=EventType.SKIP)):
        logged = LoggedOutcome.model_validate(event.model_dump(exclude={"listener", "session"}))
        line = log_row(event).line
        assert line == logged.model_dump_json()
        assert "listener" not in line
        assert "session" not in line


def test_partitions_are_in_utc() -> None:
    stockholm = datetime(2026, 11, 25, 2, 30, tzinfo=ZoneInfo("Europe/Stockholm"))
    assert Partition.of(LogKind.DECISIONS, stockholm).prefix == "logs/decisions/dt=2026-11-25/hour=01/"


def test_encoding_is_gzip_json_lines_and_deterministic() -> None:
    body = encode_object(['{"a":1}', '{"b":2}'])
    assert body == encode_object(['{"a":1}', '{"b":2}'])
    assert gzip.decompress(body) == b'{"a":1}\n{"b":2}\n'
    assert list(decode_object(body)) == ['{"a":1}', '{"b":2}']


def test_an_object_is_byte_for_byte_what_gzip_file_writes_with_a_zero_mtime() -> None:
    """Objects are named by their messages and overwritten on redelivery: the bytes must not change with the encoder."""
    for lines in ([], ['{"a":1}'], [f'{{"n":{n},"text":"åäö {"x" * (n % 97)}"}}' for n in range(3000)]):
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
            compressed.write("".join(f"{line}\n" for line in lines).encode())
        assert encode_object(lines) == buffer.getvalue()


def test_hours_include_both_ends() -> None:
    midnight = datetime(2026, 11, 25, tzinfo=UTC)
    assert len(list(hours(midnight, midnight + timedelta(hours=23, minutes=59)))) == 24
    assert list(hours(NOW, NOW)) == [NOW.replace(minute=0)]


def test_readers_drop_copies_and_skip_malformed_lines() -> None:
    store = InMemoryLogStore()
    first, other = decision(decision_id="d-1"), decision(decision_id="d-2")
    write_logs(store, first, name="batch-1")
    write_logs(store, first, other, name="batch-2")  # a redelivery regrouped with another record
    prefix = Partition.of(LogKind.DECISIONS, NOW).prefix
    store.objects[f"{prefix}broken.jsonl.gz"] = encode_object(["{not json", '{"kind": "decision"}'])
    store.objects[f"{prefix}not-gzip.jsonl.gz"] = b"plain text"
    damaged = bytearray(encode_object(['{"kind": "decision"}'] * 50))
    damaged[10] ^= 0xFF  # the deflate stream right after gzip's 10-byte header: zlib.error, not an OSError
    store.objects[f"{prefix}damaged.jsonl.gz"] = bytes(damaged)
    store.objects[f"{prefix}empty.jsonl.gz"] = b""  # no bytes: no gzip header, so not an object Record wrote
    stats = ReadStats()
    assert [record.decision_id for record in read_decisions(store, NOW, NOW, stats)] == ["d-1", "d-2"]
    assert (stats.rows, stats.duplicates_dropped, stats.malformed_lines, stats.unreadable_objects) == (2, 1, 2, 3)


def test_outcomes_are_deduplicated_by_identity_not_by_event_id() -> None:
    store = InMemoryLogStore()
    beacon = outcome(decision_id="d-1")
    replay = outcome(decision_id="d-1", occurred_at=NOW + timedelta(minutes=5))  # same identity, new event id
    click = outcome(decision_id="d-1", event_type=EventType.CLICK)
    write_logs(store, beacon, replay, click)
    stats = ReadStats()
    rows = list(read_outcomes(store, NOW, NOW, stats))
    assert [row.event_type for row in rows] == [EventType.IMPRESSION, EventType.CLICK]
    assert stats.duplicates_dropped == 1


def test_an_identity_is_a_copy_within_the_dedupe_horizon_and_read_again_past_it() -> None:
    store = InMemoryLogStore()
    beacon = outcome(decision_id="d-1")
    write_logs(store, beacon, outcome(decision_id="d-2"))
    write_logs(store, outcome(decision_id="d-1", occurred_at=NOW + timedelta(hours=1)))  # the next hour: a copy
    write_logs(store, outcome(decision_id="d-1", occurred_at=NOW + timedelta(hours=3)))  # past the horizon
    stats = ReadStats()
    rows = list(read_outcomes(store, NOW, NOW + timedelta(hours=3), stats, dedupe_horizon=timedelta(hours=1)))
    assert [(row.decision_id, row.occurred_at - NOW) for row in rows] == [
        ("d-1", timedelta(0)),
        ("d-2", timedelta(0)),
        ("d-1", timedelta(hours=3)),
    ]
    assert stats.duplicates_dropped == 1


def test_the_join_gives_one_row_per_chosen_ad_with_its_outcome_flags() -> None:
    store = InMemoryLogStore()
    chosen = decision(decision_id="d-1", ads=("a-ad-1", "b-ad-1"))
    write_logs(
        store,
        chosen,
        outcome(decision_id="d-1", ad_id="a-ad-1"),
        outcome(decision_id="d-1", ad_id="a-ad-1"),  # a duplicate changes nothing
        outcome(decision_id="d-1", ad_id="a-ad-1", event_type=EventType.CLICK, occurred_at=NOW + timedelta(hours=3)),
        outcome(decision_id="d-1", ad_id="b-ad-1", event_type=EventType.SKIP),
        outcome(decision_id="d-1", ad_id="b-ad-1", event_type=EventType.CLICK, occurred_at=NOW + timedelta(days=2)),
        outcome(decision_id="d-unknown", ad_id="a-ad-1"),
    )
    rows = list(read_joined(store, NOW, NOW))
    assert [(row.ad_id, row.rank, row.propensity) for row in rows] == [("a-ad-1", 1, 0.9), ("b-ad-1", 2, 0.9)]
    first, second = rows
    assert (first.impression, first.click, first.complete, first.skip) == (True, True, False, False)
    assert (second.impression, second.click, second.skip) == (False, False, True)  # the click came too late
    assert first.ad_features == {"ad_id": "a-ad-1"}
    assert first.listener_features == chosen.listener_features


@pytest.mark.parametrize("decided_at", [NOW.replace(minute=20, second=30), NOW.replace(minute=0, second=30)])
def test_an_outcome_a_little_earlier_than_its_decision_joins_it_across_an_hour_boundary(decided_at: datetime) -> None:
    # Given a decision and its impression and click reported by an app whose clock is 40 s behind, which at
    # xx:00:30 files them in the hour before the decision's
    store = InMemoryLogStore()
    early = decided_at - timedelta(seconds=40)
    write_logs(
        store,
        decision(decision_id="d-1", decided_at=decided_at),
        outcome(decision_id="d-1", event_type=EventType.IMPRESSION, occurred_at=early),
        outcome(decision_id="d-1", event_type=EventType.CLICK, occurred_at=early),
    )
    # When the decision's hour is joined
    stats = ReadStats()
    (row,) = read_joined(store, decided_at, decided_at, stats)
    # Then both outcomes join it, whichever hour they were filed in
    assert (row.impression, row.click, stats.late_outcomes) == (True, True, 0)


def test_the_join_streams_a_decision_once_its_attribution_window_is_read() -> None:
    store = ListingLogStore()
    write_logs(
        store, decision(decision_id="d-early"), decision(decision_id="d-late", decided_at=NOW + timedelta(hours=10))
    )
    rows = read_joined(store, NOW, NOW + timedelta(hours=10), attribution_window=timedelta(hours=2))
    assert next(rows).decision_id == "d-early"
    last_outcome_hour = max(prefix for prefix in store.listed if "/outcomes/" in prefix)
    assert last_outcome_hour == Partition.of(LogKind.OUTCOMES, NOW + timedelta(hours=2)).prefix
    assert [row.decision_id for row in rows] == ["d-late"]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda row: row.update(decided_at=NOW.replace(tzinfo=None).isoformat()),  # no offset: which hour?
        lambda row: row["chosen"][0].update(propensity=0.0),  # a weight of 1 / 0 in every estimate
    ],
    ids=["naive-decided-at", "zero-propensity"],
)
def test_a_decision_line_that_breaks_what_training_assumes_is_malformed_not_fatal(spoil: Any) -> None:
    # Given a good decision and a line spoiled in a way the model used to let through
    store = InMemoryLogStore()
    write_logs(store, decision(decision_id="d-good"))
    row = json.loads(log_row(decision(decision_id="d-spoiled")).line)
    spoil(row)
    store.objects[Partition.of(LogKind.DECISIONS, NOW).object_key(["spoiled"])] = encode_object([json.dumps(row)])
    # When the hour is read, the spoiled line is counted as malformed and the read goes on
    stats = ReadStats()
    assert [record.decision_id for record in read_decisions(store, NOW, NOW, stats)] == ["d-good"]
    assert stats.malformed_lines == 1


def test_an_outcome_line_without_a_time_zone_is_malformed_not_fatal() -> None:
    store = InMemoryLogStore()
    write_logs(store, decision(decision_id="d-1"), outcome(decision_id="d-1"))
    row = json.loads(log_row(outcome(decision_id="d-1", event_type=EventType.CLICK)).line)
    row["occurred_at"] = NOW.replace(tzinfo=None).isoformat()
    store.objects[Partition.of(LogKind.OUTCOMES, NOW).object_key(["spoiled"])] = encode_object([json.dumps(row)])
    stats = ReadStats()
    (joined,) = read_joined(store, NOW, NOW, stats)
    assert (joined.impression, joined.click, stats.malformed_lines) == (True, False, 1)


@pytest.mark.parametrize(
    ("first", "later"),
    [
        (NOW, timedelta(hours=60)),
        (NOW, timedelta(days=7)),
        # the first late in its hour, the copy as late as Track takes one (a 7-day token, a clock 4 min ahead): the
        # copy's partition is 7 days and an hour after the first's
        (NOW.replace(minute=58), timedelta(days=7, minutes=4)),
    ],
)
def test_a_beacon_fired_again_days_later_within_its_tokens_life_is_read_once(first: datetime, later: timedelta) -> None:
    # Given a click filed when it was reported, and its beacon fired again while its token (up to 7 days) lived
    store = InMemoryLogStore()
    write_logs(store, outcome(decision_id="d-1", event_type=EventType.CLICK, occurred_at=first))
    write_logs(store, outcome(decision_id="d-1", event_type=EventType.CLICK, occurred_at=first + later), name="again")
    # When the outcomes of the whole span are read (as `adserve logs --kind outcomes` reads them)
    stats = ReadStats()
    rows = list(read_outcomes(store, first, first + later, stats))
    # Then the click is there once
    assert [(row.decision_id, row.event_type) for row in rows] == [("d-1", EventType.CLICK)]
    assert stats.duplicates_dropped == 1
