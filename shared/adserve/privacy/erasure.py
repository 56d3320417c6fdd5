"""Erasure of a listener (GDPR art. 17): the one service behind ``POST /v1/erasures`` and ``adserve forget``.

The id travels in the request's body, never in its URL: paths and query strings reach access logs, proxies and
traces that bodies do not.

What adserve keeps about a listener, and what an erasure does to each:

- **Frequency counters** (the FrequencyCaps table, ``cap#...`` items in the listener's partition): deleted,
  under every pseudonym the listener can have (the current key's and, after a rotation, the previous key's)
  and under the raw id itself, the partition counters had before pseudonyms existed. With them go the
  impression dedupe markers (``seen#...``) older versions put in the listener's partition, until their TTL
  (14 days) has removed the last of them. Markers written now live in partitions of their own and hold
  nothing about the listener (a decision id, an ad id and an expiry on the hour; ``dal.impression_counter``):
  erasure cannot find them and need not: they expire.
- **Training logs** (decision rows carry ``listener_hash``, the pseudonym, when the listener consented to
  measurement; rows from before pseudonyms, an unkeyed hash): S3 objects hold many listeners' rows, so they
  are not rewritten. Instead the pseudonyms (and, while rows from before them may remain, their unkeyed hash:
  ``pre_pseudonym_logs``) go into the erasure ledger, and every reader
  of the logs (the trainer, ``adserve logs``) drops the decision rows whose ``listener_hash`` it holds, from
  the next run on; their outcome rows then join nothing (outcome rows carry no listener). The objects
  themselves expire after the logs bucket's retention (LogRetentionDays).
- **Models trained before**: not retrained; a model holds weights per feature value, not per listener (the
  listener id is never a feature), and the next retrain no longer sees the rows.

Both steps are idempotent: deleting an empty partition deletes nothing, and the ledger records a pseudonym
at most once; a second erasure of the same id succeeds and changes nothing.

The ledger holds pseudonyms only, never the id, so it is no more personal than the logs it filters; the legacy
hash, which anyone with an id can compute, the store keeps where it expires with the rows that carried it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from adserve.core.identifiers import Identifier
from adserve.core.observability import logger
from adserve.privacy.pseudonyms import Pseudonymizer, legacy_listener_hash

TRAINING_LOGS_NOTE = (
    "decision rows logged under this listener's pseudonyms are dropped from every training run from now on; "
    "the log objects themselves expire after the logs bucket's retention (LogRetentionDays)"
)


@dataclass(frozen=True, slots=True)
class PartitionDeletion:
    """What deleting one partition of the FrequencyCaps table removed."""

    counters: int = 0
    markers: int = 0


class CounterPartitions(Protocol):
    """The FrequencyCaps table, one listener partition at a time."""

    def delete_partition(self, partition: str) -> PartitionDeletion:
        """Delete every item of the partition (all pages); what was deleted, by kind."""
        ...


class ErasureLedger(Protocol):
    """The pseudonyms of erased listeners: written by erasure, read once per training run."""

    def record(self, pseudonym: str) -> bool:
        """Note the pseudonym as erased; False when it already was (nothing is written then)."""
        ...

    def erased(self) -> frozenset[str]:
        """Every pseudonym recorded so far."""
        ...


class ErasureRequest(BaseModel):
    """Whom to erase: the listener's id as apps send it in ``POST /v1/decisions``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listener_id: Identifier = Field(description="The listener's id (1-64 of A-Z a-z 0-9 _ . : -).")

    def __repr__(self) -> str:
        """Without the id: whatever formats a request (a debug message, an error's message) must not name it."""
        return "ErasureRequest(listener_id=<withheld>)"

    __str__ = __repr__


class ErasureResponse(BaseModel):
    """What one erasure did. Counts only: neither the id nor its pseudonyms are echoed."""

    erased: bool = Field(default=True, description="Always true: the listener's data is gone or was already.")
    partitions_searched: int = Field(description="Counter partitions looked in: one per key, plus the raw-id one.")
    counters_deleted: int = Field(description="Frequency counters (cap#...) deleted.")
    markers_deleted: int = Field(
        description=(
            "Impression dedupe markers (seen#...) deleted from the listener's partitions: only ones older versions "
            "left there (for 14 days at most); markers written now hold nothing about the listener and are not "
            "in its partitions, so this is 0 once those have expired."
        )
    )
    ledger_entries_added: int = Field(description="Pseudonyms newly recorded in the erasure ledger (0 if repeated).")
    training_logs: str = Field(default=TRAINING_LOGS_NOTE, description="What happens to the logged rows.")


class ErasureService:
    """`keys` is called on every erasure: a rotation must be seen at once, or the new key's partition is missed.

    `pre_pseudonym_logs`: whether the logs may still hold rows from before pseudonyms, which carry an unkeyed hash
    of the id. Only then does the ledger get that hash too: anyone holding an id can test it against the ledger, so
    a deployment that never logged such rows (or whose last one has expired) must not write it.
    """

    def __init__(
        self,
        keys: Callable[[], Pseudonymizer],
        counters: CounterPartitions,
        ledger: ErasureLedger,
        *,
        pre_pseudonym_logs: bool,
    ) -> None:
        self._keys = keys
        self._counters = counters
        self._ledger = ledger
        self._pre_pseudonym_logs = pre_pseudonym_logs

    def erase(self, listener_id: str) -> ErasureResponse:
        """Record the listener's pseudonyms in the ledger, then delete its counter partitions.

        The ledger first: if a deletion fails the caller retries the whole (idempotent) erasure, and the
        training runs in between already drop the rows.
        """
        pseudonyms = self._keys().every_listener_pseudonym(listener_id)
        legacy = (legacy_listener_hash(listener_id),) if self._pre_pseudonym_logs else ()
        added = sum(self._ledger.record(name) for name in (*pseudonyms, *legacy))
        # The raw id is a legacy partition: counters written before pseudonyms existed are keyed by it.
        partitions = tuple(dict.fromkeys((*pseudonyms, listener_id)))
        deletions = [self._counters.delete_partition(partition) for partition in partitions]
        response = ErasureResponse(
            partitions_searched=len(partitions),
            counters_deleted=sum(deletion.counters for deletion in deletions),
            markers_deleted=sum(deletion.markers for deletion in deletions),
            ledger_entries_added=added,
        )
        logger.info(
            "listener erased",
            extra={"pseudonym": pseudonyms[0], "erasure": response.model_dump(exclude={"training_logs"})},
        )
        return response
