"""Catalog snapshots: each catalog version's ad features, written once to the logs bucket, named by content.

A compact decision record (schema 2, adserve.outcomes.decision_records) names its catalog version instead of
repeating every candidate's features: ``catalogs/<version>.json.gz`` holds, per ad id, what no request changes
(``campaign_id``, ``advertiser_id``, ``features``). The version is the sha256 of the snapshot's JSON (ads by
id, each ad's fields in the order the record logs them), so the same catalog gives the same name in every
execution environment, and a reader can check the bytes it got are the ones named.

Decide puts a snapshot only if absent (environments racing write it once) and writes compact records only
once the put succeeded, so a record never names a snapshot that was never written. Snapshots never expire:
a record of any age may name one (docs/storage.md).
"""

import gzip
import hashlib
import json
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from adserve.core.errors import LogObjectMissingError

CATALOG_PREFIX: Final = "catalogs/"
SNAPSHOT_SUFFIX: Final = ".json.gz"

LoggedAd = Mapping[str, Any]
"""One ad's static part of a decision-record candidate: ``campaign_id``, ``advertiser_id``, ``features``."""


def snapshot_key(version: str) -> str:
    return f"{CATALOG_PREFIX}{version}{SNAPSHOT_SUFFIX}"


@dataclass(frozen=True)
class CatalogSnapshotFile:
    version: str
    body: bytes
    """gzip (zero mtime) of the JSON whose sha256 is the version: the same catalog always gives the same bytes."""

    @property
    def key(self) -> str:
        return snapshot_key(self.version)


def snapshot_file(ads: Iterable[tuple[str, LoggedAd]]) -> CatalogSnapshotFile | None:
    """The snapshot of (ad_id, static fields) pairs; None when one ad id comes with two different fields (the
    snapshot could not say which one a record meant: such a catalog's records stay inline)."""
    by_id: dict[str, LoggedAd] = {}
    for ad_id, logged in ads:
        if by_id.setdefault(ad_id, logged) != logged:
            return None
    document = {ad_id: by_id[ad_id] for ad_id in sorted(by_id)}
    data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return CatalogSnapshotFile(hashlib.sha256(data).hexdigest(), gzip.compress(data, mtime=0))


UNREADABLE_GZIP: Final = (OSError, EOFError, zlib.error)
"""What decompressing a damaged gzip object raises: not gzip or a bad CRC (OSError), cut short (EOFError), a
damaged deflate stream (zlib.error, not an OSError). The log reader counts such objects and goes on."""


class CorruptSnapshotError(ValueError):
    """A snapshot's bytes are not the catalog its name promises."""


def parse_snapshot(version: str, body: bytes) -> dict[str, LoggedAd]:
    """The ads of a snapshot, after checking its bytes hash to its version; raises CorruptSnapshotError."""
    try:
        data = gzip.decompress(body)
    except UNREADABLE_GZIP as error:
        raise CorruptSnapshotError(f"catalog {version} is not gzip") from error
    if hashlib.sha256(data).hexdigest() != version:
        raise CorruptSnapshotError(f"catalog {version} does not hash to its name")
    ads: dict[str, LoggedAd] = json.loads(data)
    return ads


class CatalogSnapshots:
    """Snapshots by version, each read once per reader run (a run names a handful: one per catalog change)."""

    def __init__(self, read_object: Callable[[str], bytes]) -> None:
        self._read_object = read_object
        self._by_version: dict[str, dict[str, LoggedAd] | CorruptSnapshotError] = {}

    def ads(self, version: str) -> dict[str, LoggedAd]:
        """Raises CorruptSnapshotError for a corrupt or missing snapshot (once read, it is not read again), or
        whatever else reading the object raises (LogStoreUnavailableError: the run fails and is retried).

        A missing one is skipped like a corrupt one: a snapshot deleted or lost in a bucket copy never comes
        back, and failing on it would fail every run whose window holds one of its records."""
        ads = self._by_version.get(version)
        if ads is None:
            try:
                ads = parse_snapshot(version, self._read_object(snapshot_key(version)))
            except CorruptSnapshotError as error:
                ads = error
            except LogObjectMissingError:
                ads = CorruptSnapshotError(f"catalog {version} is missing")
            self._by_version[version] = ads
        if isinstance(ads, CorruptSnapshotError):
            raise ads
        return ads
