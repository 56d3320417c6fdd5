"""The erasure service on in-memory ports: which partitions, the ledger first, idempotence, the response."""

from adserve.privacy.erasure import ErasureService, PartitionDeletion
from adserve.privacy.pseudonyms import Pseudonymizer, legacy_listener_hash

from tests.support.privacy import TEST_PSEUDONYM_KEY

PREVIOUS_KEY = b"the key before the last rotation, 32 bytes"


class Partitions:
    def __init__(self, items: dict[str, list[str]]) -> None:
        self.items = items
        self.calls: list[str] = []

    def delete_partition(self, partition: str) -> PartitionDeletion:
        self.calls.append(partition)
        keys = self.items.pop(partition, [])
        return PartitionDeletion(
            counters=sum(key.startswith("cap#") for key in keys), markers=sum(key.startswith("seen#") for key in keys)
        )


class Ledger:
    def __init__(self) -> None:
        self.entries: list[str] = []

    def record(self, pseudonym: str) -> bool:
        if pseudonym in self.entries:
            return False
        self.entries.append(pseudonym)
        return True

    def erased(self) -> frozenset[str]:
        return frozenset(self.entries)


def test_both_keys_pseudonyms_and_the_raw_id_are_searched_and_only_pseudonyms_recorded() -> None:
    keys = Pseudonymizer(TEST_PSEUDONYM_KEY, PREVIOUS_KEY)
    current, previous = keys.every_listener_pseudonym("listener-1")
    partitions = Partitions(
        {
            current: ["cap#a", "seen#1"],
            previous: ["cap#b"],
            "listener-1": ["cap#c", "seen#2"],
            keys.listener("listener-2"): ["cap#d"],
        }
    )
    ledger = Ledger()
    service = ErasureService(lambda: keys, partitions, ledger, pre_pseudonym_logs=True)

    first = service.erase("listener-1")
    second = service.erase("listener-1")

    assert partitions.calls[:3] == [current, previous, "listener-1"]
    assert list(partitions.items) == [keys.listener("listener-2")]
    assert ledger.entries == [current, previous, legacy_listener_hash("listener-1")]
    assert (first.partitions_searched, first.counters_deleted, first.markers_deleted) == (3, 3, 2)
    assert first.ledger_entries_added == 3
    assert (second.counters_deleted, second.markers_deleted, second.ledger_entries_added) == (0, 0, 0)
    assert "listener-1" not in first.model_dump_json()


def test_the_keys_are_read_on_every_erasure_so_a_rotation_is_seen_at_once() -> None:
    served = [Pseudonymizer(PREVIOUS_KEY), Pseudonymizer(TEST_PSEUDONYM_KEY, PREVIOUS_KEY)]
    ledger = Ledger()
    service = ErasureService(lambda: served.pop(0), Partitions({}), ledger, pre_pseudonym_logs=True)
    service.erase("listener-1")
    service.erase("listener-1")
    assert ledger.entries == [
        Pseudonymizer(PREVIOUS_KEY).listener("listener-1"),
        legacy_listener_hash("listener-1"),
        Pseudonymizer(TEST_PSEUDONYM_KEY).listener("listener-1"),
    ]


def test_a_deployment_without_rows_from_before_pseudonyms_records_no_unkeyed_hash() -> None:
    # Anyone holding an id can compute its unkeyed hash and test it against the ledger: it is written only while
    # rows that carry it may remain (PrePseudonymLogs)
    keys = Pseudonymizer(TEST_PSEUDONYM_KEY, PREVIOUS_KEY)
    ledger = Ledger()
    erased = ErasureService(lambda: keys, Partitions({}), ledger, pre_pseudonym_logs=False).erase("listener-1")
    assert ledger.entries == list(keys.every_listener_pseudonym("listener-1"))
    assert legacy_listener_hash("listener-1") not in ledger.entries
    assert erased.ledger_entries_added == 2
