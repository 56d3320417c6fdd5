"""An inline (schema-1) decision record as the compact record of the same decision, with its catalog snapshot."""

from adserve.outcomes.catalog_snapshots import CatalogSnapshotFile, snapshot_file
from adserve.outcomes.decision_records import CompactCandidates, DecisionRecord, exposure_column


def compacted(record: DecisionRecord, snapshot: CatalogSnapshotFile | None = None) -> DecisionRecord:
    """The record as Decide logs it once `snapshot` (by default: one of just its candidates' ads) is written."""
    candidates = record.inline_candidates
    snapshot = snapshot or snapshot_of([record])
    return DecisionRecord.model_validate(
        {
            **record.model_dump(),
            "schema_version": 2,
            "catalog_version": snapshot.version,
            "candidates": CompactCandidates(
                ad_id=[c.ad_id for c in candidates],
                score=[c.score for c in candidates],
                value_cpm=[c.value_cpm for c in candidates],
                serve_probability=[c.serve_probability for c in candidates],
                exposure=exposure_column([c.exposure for c in candidates]),
            ),
        }
    )


def snapshot_of(records: list[DecisionRecord]) -> CatalogSnapshotFile:
    """The snapshot of every ad the records' candidates name."""
    snapshot = snapshot_file(
        (c.ad_id, {"campaign_id": c.campaign_id, "advertiser_id": c.advertiser_id, "features": c.features})
        for record in records
        for c in record.inline_candidates
    )
    assert snapshot is not None, "an ad id with two sets of features"
    return snapshot
