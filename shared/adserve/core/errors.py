"""Domain errors. The HTTP layer maps each class to a status code in one place (http_api.errors)."""


class AdserveError(Exception):
    """Base of every error the domain raises on purpose."""


class InvalidInputError(AdserveError):
    """Something a caller sent breaks a rule pydantic alone cannot express.

    *field* names what broke it as the request models' 422s do (``query.cursor``, ``currency``), so every 422 has
    the same ``details`` a client can point at the input with.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(AdserveError):
    """The named entity does not exist."""


class ConflictError(AdserveError):
    """The named entity kept changing under a write that must see it unchanged; trying again will do."""


class ConfigurationError(AdserveError):
    """The function's environment is missing or malformed; raised at start-up."""


class ModelLoadError(AdserveError):
    """A model artifact is corrupt, does not match its manifest, or needs a feature spec we cannot honour."""


class CapStoreUnavailableError(AdserveError):
    """Frequency counters could not be read in time; capped campaigns must not be served."""


class DecisionLogUnavailableError(AdserveError):
    """A decision record could not be queued; the decision is served anyway and the loss is counted."""


class TokenError(AdserveError):
    """A tracking token is malformed, forged, tampered with, expired or used for the wrong event type.

    `code` is the stable, machine-readable reason the API answers with; subclasses narrow it.
    """

    code: str = "invalid_token"


class ExpiredTokenError(TokenError):
    """A genuine tracking token past its expiry."""

    code = "expired_token"


class WrongEventTypeError(TokenError):
    """A genuine tracking token presented for an event type it was not issued for."""

    code = "wrong_event_type"


class OutcomeQueueUnavailableError(AdserveError):
    """An outcome event could not be queued; the caller should retry (the event's identity makes that safe)."""


class InvalidRecordError(AdserveError):
    """A queue message is not a valid decision record or outcome event; it goes to the DLQ."""


class CampaignNotYetListedError(AdserveError):
    """An outcome names a campaign Record's directory does not list, although its decision is newer than the
    directory's load: a campaign created moments ago. Its record fails, to be counted when redelivered."""


class CounterStoreUnavailableError(AdserveError):
    """An impression's counters could not be written; the record fails and is redelivered."""


class ErasureUnavailableError(AdserveError):
    """A listener's counters could not be deleted or its pseudonyms recorded; the erasure must be retried."""


class LogStoreUnavailableError(AdserveError):
    """A training-log object could not be written or read."""


class LogObjectMissingError(LogStoreUnavailableError):
    """The object read is not in the bucket (deleted, expired, or lost in a copy): no retry brings it back."""


class ModelStoreUnavailableError(AdserveError):
    """The models bucket could not be read or written; Decide keeps serving the model it has."""


class ModelNotFoundError(AdserveError):
    """No published model has this version (or its files are incomplete)."""


class InvalidModelPointerError(AdserveError):
    """The active-model pointer exists but is not a valid pointer document."""


class PointerChangedError(AdserveError):
    """The active-model pointer is no longer the one a write was meant to replace (another retrain or promote
    wrote it in between); nothing was written."""


class ModelVersionConflictError(AdserveError):
    """Publishing would overwrite an existing model version with different bytes; versions are immutable."""


class SecretKeysUnavailableError(AdserveError):
    """HMAC keys could not be read from Secrets Manager and none are cached (or a token names a key the cache could
    not look for): nothing can be signed, verified or pseudonymised until they can; the caller retries."""


class CampaignStoreUnavailableError(AdserveError):
    """The campaigns table could not be read or written (throttled, unreachable) after the client's retries; the
    caller retries: a PUT again writes the same campaign, a DELETE of one already gone is a 404."""


class DeliveryStoreUnavailableError(AdserveError):
    """Delivery counters could not be written or read; Record's records fail and are redelivered."""
