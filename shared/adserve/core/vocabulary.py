"""The closed vocabularies of the API: placements, devices, age buckets, content types.

They live in one place so that request validation, campaign targeting and the OpenAPI document agree.
"""

from enum import StrEnum


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


class EventType(StrEnum):
    IMPRESSION = "impression"
    CLICK = "click"
    COMPLETE = "complete"
    SKIP = "skip"
