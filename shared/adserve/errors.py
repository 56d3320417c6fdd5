"""Domain errors. The HTTP layer maps each class to a status code in one place (api_errors)."""


class AdserveError(Exception):
    """Base of every error the domain raises on purpose."""


class InvalidInputError(AdserveError):
    """Something a caller sent breaks a rule pydantic alone cannot express."""


class NotFoundError(AdserveError):
    """The named entity does not exist."""


class ConfigurationError(AdserveError):
    """The function's environment is missing or malformed; raised at start-up."""


class ModelLoadError(AdserveError):
    """A model artifact is corrupt, does not match its manifest, or needs a feature spec we cannot honour."""


class CapStoreUnavailableError(AdserveError):
    """Frequency counters could not be read in time; capped campaigns must not be served."""


class DecisionLogUnavailableError(AdserveError):
    """A decision record could not be queued; the decision is served anyway and the loss is counted."""


class TokenError(AdserveError):
    """A tracking token is malformed, forged, tampered with, expired or used for the wrong event type."""
