"""A synthetic listening world whose true click probabilities are known.

It trains the bootstrap model and drives end-to-end demos: because the truth is known, a model can be
judged against the best achievable (Bayes) AUC, and two worlds with different seeds disagree the way a
real audience drifts away from what a model was trained on.

True CTR = sigmoid(bias + sum of per-field effects + listener_latent . ad_latent), where the listener
latent is a sum of embeddings of *observable* fields, so a factorization machine over the same fields can
approach the Bayes AUC. Values the world does not know (a country it never drew) contribute nothing.

With ``fatigue`` (off by default, so every existing world and demo is unchanged), a listener tires of a
campaign: each earlier impression of it (the caller counts them, as frequency caps do) lowers the logit by
``fatigue``, so the same ad served again and again clicks less and less.

With ``examination`` (off by default), the k-th ad of a break is heard less closely: its click probability is
multiplied by ``examination[k - 1]`` (the last factor for later slots), whatever the ad. Off by default because
every figure so far was measured without it: the demo serves one ad per break, where it would change nothing, but
the multi-slot traffic of tests and benchmarks would silently change its truth.
"""

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from adserve.core.vocabulary import PLAYS, AgeBucket, CreativeFormat, Device, Placement
from adserve.models.features import AD_FIELDS, LISTENER_FIELDS
from adserve.training.metrics import roc_auc

COUNTRY_WEIGHTS = {
    "US": 0.30,
    "GB": 0.10,
    "DE": 0.10,
    "SE": 0.05,
    "BR": 0.15,
    "IN": 0.15,
    "FR": 0.08,
    "JP": 0.07,
}
DEVICE_WEIGHTS = dict(zip([d.value for d in Device], [0.55, 0.15, 0.05, 0.07, 0.05, 0.08, 0.03, 0.02], strict=True))
AGE_WEIGHTS = dict(zip([a.value for a in AgeBucket], [0.08, 0.25, 0.27, 0.18, 0.11, 0.07, 0.04], strict=True))
CONTENT_TYPE_WEIGHTS = {"music": 0.7, "podcast": 0.3}
GENRES_BY_CONTENT_TYPE = {
    "music": ("pop", "rock", "hiphop", "jazz", "classical", "electronic"),
    "podcast": ("news", "comedy", "true_crime", "sports", "tech"),
}
PLACEMENT_WEIGHTS_BY_CONTENT_TYPE = {
    "music": {Placement.AUDIO_PREROLL: 0.35, Placement.AUDIO_MIDROLL: 0.45, Placement.DISPLAY_COMPANION: 0.2},
    "podcast": {
        Placement.PODCAST_PREROLL: 0.3,
        Placement.PODCAST_MIDROLL: 0.4,
        Placement.PODCAST_POSTROLL: 0.15,
        Placement.DISPLAY_COMPANION: 0.15,
    },
}
CATEGORIES = ("auto", "food", "finance", "travel", "gaming", "retail", "telecom", "entertainment")
FORMATS = ("audio", "display")

# (main-effect sd, latent sd) per field: how much each field moves CTR alone and through the taste match.
_EFFECT_SCALES = {
    "country": (0.25, 0.2),
    "device": (0.25, 0.2),
    "age_bucket": (0.25, 0.25),
    "content_type": (0.2, 0.2),
    "genre": (0.25, 0.25),
    "placement": (0.3, 0.2),
    "hour_of_day": (0.1, 0.1),
    "day_of_week": (0.05, 0.05),
    "advertiser_id": (0.3, 0.3),
    "campaign_id": (0.2, 0.15),
    "ad_id": (0.15, 0.1),
    "category": (0.2, 0.4),
    "format": (0.2, 0.2),
}


class Impressions(NamedTuple):
    """Logged impressions under a uniform-random ad policy, with the truth behind each click."""

    listeners: list[dict[str, str]]
    ads: list[dict[str, str]]
    clicks: np.ndarray
    true_probs: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


class World:
    """Listeners with hidden but field-determined tastes, a catalog of ads, and the true CTR between them."""

    def __init__(
        self,
        seed: int,
        *,
        n_advertisers: int = 12,
        campaigns_per_advertiser: int = 3,
        ads_per_campaign: int = 2,
        n_categories: int = len(CATEGORIES),
        latent_dim: int = 4,
        base_ctr: float = 0.02,
        fatigue: float = 0.0,
        examination: tuple[float, ...] = (),
    ) -> None:
        if not 1 <= n_categories <= len(CATEGORIES):
            raise ValueError(f"n_categories must be in 1..{len(CATEGORIES)}")
        if fatigue < 0.0:
            raise ValueError("fatigue must not be negative")
        if not all(0.0 < factor <= 1.0 for factor in examination):
            raise ValueError("examination factors must be in (0, 1]")
        self.seed = seed
        self.fatigue = fatigue
        self.examination = examination
        rng = np.random.default_rng(seed)
        self.ads = self._build_catalog(rng, n_advertisers, campaigns_per_advertiser, ads_per_campaign, n_categories)
        formats = [CreativeFormat(ad["format"]) for ad in self.ads]
        self._playable = {
            placement.value: np.flatnonzero([f in PLAYS[placement] for f in formats]) for placement in Placement
        }
        genres = GENRES_BY_CONTENT_TYPE["music"] + GENRES_BY_CONTENT_TYPE["podcast"]
        self._vocab: dict[str, tuple[str, ...]] = {
            "country": tuple(COUNTRY_WEIGHTS),
            "device": tuple(DEVICE_WEIGHTS),
            "age_bucket": tuple(AGE_WEIGHTS),
            "content_type": tuple(CONTENT_TYPE_WEIGHTS),
            "genre": genres,
            "placement": tuple(p.value for p in Placement),
            "hour_of_day": tuple(str(h) for h in range(24)),
            "day_of_week": tuple(str(d) for d in range(7)),
            **{field: tuple(dict.fromkeys(ad[field] for ad in self.ads)) for field in AD_FIELDS},
        }
        self._index = {field: {v: i for i, v in enumerate(values)} for field, values in self._vocab.items()}
        self._genre_probs = self._conditional_genre_probs(rng, genres)
        self._placement_probs = np.array(
            [
                [PLACEMENT_WEIGHTS_BY_CONTENT_TYPE[ct].get(Placement(p), 0.0) for p in self._vocab["placement"]]
                for ct in self._vocab["content_type"]
            ]
        )
        hours = np.arange(24)
        daytime = 0.25 + np.clip(np.sin(np.pi * (hours - 5) / 19), 0.0, None)  # quiet nights, busy afternoons
        self._hour_probs = daytime / daytime.sum()
        # One extra zero row per field: an unknown value has no effect.
        self._main: dict[str, np.ndarray] = {}
        self._latent: dict[str, np.ndarray] = {}
        for field, values in self._vocab.items():
            main_sd, latent_sd = _EFFECT_SCALES[field]
            self._main[field] = np.append(rng.normal(0.0, main_sd, len(values)), 0.0)
            self._latent[field] = np.vstack(
                [rng.normal(0.0, latent_sd, (len(values), latent_dim)), np.zeros(latent_dim)]
            )
        self._main["hour_of_day"][:24] += 0.2 * np.cos(2 * np.pi * (hours - 20) / 24)  # evenings click more
        self._ad_codes = self._codes(self.ads, AD_FIELDS)
        self._bias = 0.0  # _calibrated_bias needs the bias-free logits
        self._bias = self._calibrated_bias(np.random.default_rng(seed + 1), base_ctr)

    @staticmethod
    def _build_catalog(
        rng: np.random.Generator, n_advertisers: int, campaigns: int, ads: int, n_categories: int
    ) -> tuple[dict[str, str], ...]:
        catalog = []
        for a in range(n_advertisers):
            category = CATEGORIES[int(rng.integers(n_categories))]
            for c in range(campaigns):
                for i in range(ads):
                    catalog.append(
                        {
                            "advertiser_id": f"adv-{a:03d}",
                            "campaign_id": f"cmp-{a:03d}-{c:02d}",
                            "ad_id": f"ad-{a:03d}-{c:02d}-{i:02d}",
                            "category": category,
                            "format": "display" if rng.random() < 0.3 else "audio",
                        }
                    )
        return tuple(catalog)

    def _conditional_genre_probs(self, rng: np.random.Generator, genres: tuple[str, ...]) -> np.ndarray:
        """P(genre | content_type, age_bucket): each age group has its own taste in what it plays."""
        probs = np.zeros((len(CONTENT_TYPE_WEIGHTS), len(AGE_WEIGHTS), len(genres)))
        for ct_code, content_type in enumerate(CONTENT_TYPE_WEIGHTS):
            allowed = [genres.index(g) for g in GENRES_BY_CONTENT_TYPE[content_type]]
            probs[ct_code][:, allowed] = rng.dirichlet(np.full(len(allowed), 2.0), size=len(AGE_WEIGHTS))
        return probs

    def _codes(self, rows: Sequence[Mapping[str, str]], fields: Sequence[str]) -> dict[str, np.ndarray]:
        codes = {}
        for field in fields:
            index, unknown = self._index[field], len(self._vocab[field])
            codes[field] = np.fromiter((index.get(row.get(field, ""), unknown) for row in rows), np.int64, len(rows))
        return codes

    def _logits(self, listener: Mapping[str, np.ndarray], ad: Mapping[str, np.ndarray]) -> np.ndarray:
        logits = np.full(len(listener[LISTENER_FIELDS[0]]), self._bias)
        taste = sum(self._latent[f][listener[f]] for f in LISTENER_FIELDS)
        appeal = sum(self._latent[f][ad[f]] for f in AD_FIELDS)
        for field, codes in (*listener.items(), *ad.items()):
            logits += self._main[field][codes]
        return np.asarray(logits + np.einsum("ij,ij->i", taste, appeal))

    def _calibrated_bias(self, rng: np.random.Generator, base_ctr: float) -> float:
        """The bias at which uniformly served impressions click at ``base_ctr`` on average."""
        listener = self._sample_listener_codes(50_000, rng)
        ad = {f: c[rng.integers(len(self.ads), size=50_000)] for f, c in self._ad_codes.items()}
        shape = self._logits(listener, ad)
        low, high = -15.0, 5.0
        for _ in range(50):
            mid = (low + high) / 2
            low, high = (mid, high) if _sigmoid(shape + mid).mean() < base_ctr else (low, mid)
        return (low + high) / 2

    def _sample_listener_codes(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        def draw(weights: Mapping[str, float]) -> np.ndarray:
            return np.asarray(rng.choice(len(weights), size=n, p=np.array(list(weights.values()))))

        def draw_conditional(probs: np.ndarray) -> np.ndarray:
            cdf = probs.cumsum(axis=1)
            return np.asarray(np.minimum((rng.random(n)[:, None] > cdf).sum(axis=1), probs.shape[1] - 1))

        codes = {
            "country": draw(COUNTRY_WEIGHTS),
            "device": draw(DEVICE_WEIGHTS),
            "age_bucket": draw(AGE_WEIGHTS),
            "content_type": draw(CONTENT_TYPE_WEIGHTS),
        }
        codes["genre"] = draw_conditional(self._genre_probs[codes["content_type"], codes["age_bucket"]])
        codes["placement"] = draw_conditional(self._placement_probs[codes["content_type"]])
        codes["hour_of_day"] = rng.choice(24, size=n, p=self._hour_probs)
        codes["day_of_week"] = rng.integers(7, size=n)
        return codes

    def _decode(self, codes: Mapping[str, np.ndarray], fields: Sequence[str]) -> list[dict[str, str]]:
        columns = [[self._vocab[f][c] for c in codes[f]] for f in fields]
        return [dict(zip(fields, values, strict=True)) for values in zip(*columns, strict=True)]

    def sample_listeners(self, n: int, rng: np.random.Generator) -> list[dict[str, str]]:
        """``n`` listener/context feature dicts keyed by LISTENER_FIELDS, drawn from the audience mix."""
        return self._decode(self._sample_listener_codes(n, rng), LISTENER_FIELDS)

    def click_probabilities(
        self,
        listeners: Sequence[Mapping[str, str]],
        ads: Sequence[Mapping[str, str]],
        exposures: np.ndarray | None = None,
    ) -> np.ndarray:
        """True CTR of listener i hearing ad i, for every i (float64, shape (n,)); ``exposures`` (n,): how often
        listener i already heard ad i's campaign (only a world with ``fatigue`` cares; None: never)."""
        if len(listeners) != len(ads):
            raise ValueError(f"{len(listeners)} listeners but {len(ads)} ads")
        logits = self._logits(self._codes(listeners, LISTENER_FIELDS), self._codes(ads, AD_FIELDS))
        if exposures is not None and self.fatigue:
            logits = logits - self.fatigue * np.asarray(exposures, dtype=np.float64)
        return _sigmoid(logits)

    def playable(self, placement: str) -> np.ndarray:
        """The indices (in ``ads``) of the ads a break in ``placement`` can play (``PLAYS``): Decide serves no
        other there, so neither does simulated traffic nor the offline policies judged against it."""
        return self._playable[placement]

    def examined(self, rank: int) -> float:
        """The factor on the click probability of the ad in slot ``rank`` (from 1): 1 without ``examination``."""
        if not self.examination:
            return 1.0
        return self.examination[min(rank, len(self.examination)) - 1]

    def click_probability(self, listener: Mapping[str, str], ad: Mapping[str, str]) -> float:
        return float(self.click_probabilities([listener], [ad])[0])

    def sample_impressions(self, n: int, rng: np.random.Generator) -> Impressions:
        """Training data as a uniform-random logging policy would collect it: ads drawn uniformly per impression."""
        listener = self._sample_listener_codes(n, rng)
        ad_choice = rng.integers(len(self.ads), size=n)
        true_probs = _sigmoid(self._logits(listener, {f: c[ad_choice] for f, c in self._ad_codes.items()}))
        clicks = (rng.random(n) < true_probs).astype(np.int8)
        ads = [self.ads[i] for i in ad_choice]
        return Impressions(self._decode(listener, LISTENER_FIELDS), ads, clicks, true_probs)


def bayes_auc(true_probs: np.ndarray, clicks: np.ndarray) -> float:
    """AUC of the true probabilities: the ceiling any model of the same impressions can reach."""
    return roc_auc(clicks, true_probs)
