"""What a cancelled DynamoDB transaction says, read the same way by every transactional writer."""

import random

from botocore.exceptions import ClientError

CONFLICT = "TransactionConflict"
DUPLICATE = "ConditionalCheckFailed"


def cancellation_reasons(error: ClientError) -> list[str]:
    """One code per item of a cancelled transaction ("None" for items that did not cause it); [] otherwise."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return []
    reasons = error.response.get("CancellationReasons", [])
    return [str(reason.get("Code", "None")) for reason in reasons]


def describe(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'Unknown')}: {details.get('Message', '')}"


def conflict_backoff(attempt: int) -> float:
    """Full jitter: concurrent writers on the same items spread out instead of colliding again."""
    return random.uniform(0, 0.025 * 2**attempt)
