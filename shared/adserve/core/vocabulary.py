"""The closed vocabularies of the API: placements, devices, age buckets, content types.

They live in one place so that request validation, campaign targeting and the OpenAPI document agree.
"""

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Placement(StrEnum):
    AUDIO_PREROLL = "audio_preroll"
    AUDIO_MIDROLL = "audio_midroll"
    PODCAST_PREROLL = "podcast_preroll"
    PODCAST_MIDROLL = "podcast_midroll"
    PODCAST_POSTROLL = "podcast_postroll"
    DISPLAY_COMPANION = "display_companion"


class Device(StrEnum):
    MOBILE = "mobile"
    DESKTOP = "desktop"
    TABLET = "tablet"
    SMART_SPEAKER = "smart_speaker"
    TV = "tv"
    CAR = "car"
    WEARABLE = "wearable"
    CONSOLE = "console"


class AgeBucket(StrEnum):
    AGE_13_17 = "13-17"
    AGE_18_24 = "18-24"
    AGE_25_34 = "25-34"
    AGE_35_44 = "35-44"
    AGE_45_54 = "45-54"
    AGE_55_64 = "55-64"
    AGE_65_PLUS = "65+"


class ContentType(StrEnum):
    MUSIC = "music"
    PODCAST = "podcast"
    AUDIOBOOK = "audiobook"
    RADIO = "radio"


class CreativeFormat(StrEnum):
    AUDIO = "audio"
    DISPLAY = "display"
    VIDEO = "video"


PLAYS: Final[Mapping[Placement, frozenset[CreativeFormat]]] = MappingProxyType(
    {
        **dict.fromkeys(
            (
                Placement.AUDIO_PREROLL,
                Placement.AUDIO_MIDROLL,
                Placement.PODCAST_PREROLL,
                Placement.PODCAST_MIDROLL,
                Placement.PODCAST_POSTROLL,
            ),
            frozenset({CreativeFormat.AUDIO}),
        ),
        Placement.DISPLAY_COMPANION: frozenset({CreativeFormat.DISPLAY, CreativeFormat.VIDEO}),
    }
)
"""The creative formats each placement can play: an ad break plays audio, the screen beside it a banner or a
video. A creative is served only where its format plays (a banner in an audio break is no ad)."""


class EventType(StrEnum):
    IMPRESSION = "impression"
    CLICK = "click"
    COMPLETE = "complete"
    SKIP = "skip"
