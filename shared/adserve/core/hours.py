"""UTC hours: the bucket of log partitions, delivery counters and calendar frequency caps."""

from datetime import UTC, datetime, timedelta
from functools import lru_cache

HOUR = timedelta(hours=1)


def utc_hour(moment: datetime) -> datetime:
    """The UTC hour *moment* falls in (minutes and below zero), in ``datetime.UTC``.

    Record asks this several times per event; ``replace(minute=0, ...)`` costs twice the cached lookup, and a
    moment already at offset zero (``datetime.UTC``, or pydantic's zone for a parsed ``Z``) skips the conversion,
    which cost ~1 us. A naive moment is local time, as ``astimezone`` reads it.
    """
    if moment.tzinfo is not UTC:
        offset = moment.utcoffset()
        if offset is None or offset:
            moment = moment.astimezone(UTC)
    return _hour(moment.year, moment.month, moment.day, moment.hour)


@lru_cache(maxsize=256)
def _hour(year: int, month: int, day: int, hour: int) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def next_whole_hour(moment: datetime) -> datetime:
    """*moment* rounded up to a whole UTC hour (itself if it is one): the expiry of an item that names a listener's
    activity, so that it does not tell the second of it (a time to match against other records)."""
    hour = utc_hour(moment)
    return hour if hour == moment else hour + HOUR
