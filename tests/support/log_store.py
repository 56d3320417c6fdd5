"""Logs in an in-memory bucket as Record writes them, for tests of the readers (dataset, joins)."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from adserve.outcomes.decision_records import DecisionRecord
from adserve.outcomes.events import OutcomeEvent
from adserve.outcomes.logs import LogRow, Partition, encode_object, log_row

from devstack.fakes import InMemoryLogStore


def write_rows(store: InMemoryLogStore, rows: Iterable[LogRow], name: str = "batch") -> None:
    """One object per partition, named after *name* (a "message" per row), as one Record batch writes them."""
    by_partition: dict[Partition, list[str]] = {}
    for row in rows:
        by_partition.setdefault(row.partition, []).append(row.line)
    for partition, lines in by_partition.items():
        store.put_object(partition.object_key([f"{name}-{row}" for row in range(len(lines))]), encode_object(lines))


def write_logs(store: InMemoryLogStore, *messages: OutcomeEvent | DecisionRecord, name: str = "batch") -> None:
    """*messages* logged as Record would: each message's log row, one object per partition."""
    write_rows(store, (log_row(message) for message in messages), name)


@dataclass
class ListingLogStore(InMemoryLogStore):
    """Notes each prefix it lists and each object it reads."""

    listed: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)

    def list_keys(self, prefix: str) -> Iterator[str]:
        self.listed.append(prefix)
        return super().list_keys(prefix)

    def read_object(self, key: str) -> bytes:
        self.read.append(key)
        return super().read_object(key)
