"""The tracking-token keys one execution environment holds: loaded lazily, reloaded every TTL, and sooner
(rate-limited) when a token names a key the cache does not hold.

After a rotation Decide's and Track's environments pick up the new key at different moments, up to a TTL
apart. Track holds the previous key too, so a Decide environment still signing with the old key is fine;
the other way round, Track meets a key id it has never seen and reloads at once, at most every
`unknown_key_refresh_seconds`, so a stream of forged key ids costs one Secrets Manager read per environment
per interval, not one per request. A reload that fails keeps the cached keys serving (RefreshingValue),
counted as SigningKeyRefreshFailures and logged.
"""

import time
from collections.abc import Callable

from adserve.core.errors import SecretKeysUnavailableError
from adserve.core.observability import MetricName, counting_failures, logger
from adserve.core.refreshing import RefreshingValue, Reloadable
from adserve.outcomes.tokens import TokenSigner

KEY_CACHE_SECONDS = 300.0
UNKNOWN_KEY_REFRESH_SECONDS = 10.0
KEY_ADOPTION_SECONDS = 330.0
"""How old a rotated key must be before Decide signs with it (``read_signer``): longer than the longest
UNKNOWN_KEY_REFRESH_SECONDS Track allows (300 s), so no Track environment can be inside its reload interval
from a load that predates the key when the key's first token reaches it."""


class SigningKeyCache:
    def __init__(
        self,
        load: Callable[[], TokenSigner],
        *,
        ttl_seconds: float = KEY_CACHE_SECONDS,
        unknown_key_refresh_seconds: float = UNKNOWN_KEY_REFRESH_SECONDS,
        first_load_attempts: int = 1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._unknown_key_refresh = unknown_key_refresh_seconds
        self._signer = RefreshingValue(
            counting_failures(self._logged_load, MetricName.SIGNING_KEY_REFRESH_FAILURES),
            ttl_seconds,
            name="signing keys",
            first_load_attempts=first_load_attempts,
            monotonic=monotonic,
        )

    def signer(self) -> TokenSigner:
        """The cached keys, reloaded first when older than the TTL (in a decision, only at its start)."""
        return self._signer.get()

    def signer_after_unknown_key(self) -> TokenSigner:
        """The keys reloaded first, unless they were (re)loaded within `unknown_key_refresh_seconds`.

        Raises SecretKeysUnavailableError when the reload failed (or the last one did, within the interval): the
        key the token names may be one the cache could not fetch, so its token is not refused for good (a 403
        tells the app never to send it again) but answered "retry".
        """
        signer = self._signer.get_if_fresher_than(self._unknown_key_refresh)
        if self._signer.age_seconds() >= self._unknown_key_refresh:
            raise SecretKeysUnavailableError("the signing keys could not be reloaded to find the token's key")
        return signer

    def reloadable(self) -> Reloadable:
        """The keys as a decision reloads them first when due (``reloaded_first``)."""
        return Reloadable(self._signer, self.signer)

    def _logged_load(self) -> TokenSigner:
        signer = self._load()
        logger.info("signing keys loaded", extra={"key_ids": signer.key_ids})
        return signer
