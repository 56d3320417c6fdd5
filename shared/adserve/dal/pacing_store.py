"""Pacing state in the Pacing table: one item per budgeted campaign, written by each pacing step.

The state is stored as a JSON string (one schema: ``PacingState``), with ``expires_at`` a week after the
step that wrote it, so a campaign whose budget was removed (and is no longer paced) leaves no item behind.
Decide's catalog reads the whole table with one Scan per refresh; a report reads one item.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from adserve.core.errors import DeliveryStoreUnavailableError
from adserve.dal.json_clients import DynamoDBJsonClient
from adserve.delivery.pacing import PacingState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

STATE_ATTRIBUTE: Final = "state"
STATE_LIFETIME: Final = timedelta(days=7)


class DynamoPacingStore:
    def __init__(self, client: DynamoDBJsonClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def put(self, state: PacingState) -> None:
        """Replace the campaign's state (one PutItem); raises DeliveryStoreUnavailableError."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "campaign_id": {"S": state.campaign_id},
                    STATE_ATTRIBUTE: {"S": state.model_dump_json()},
                    "expires_at": {"N": str(int((state.updated_at + STATE_LIFETIME).timestamp()))},
                },
            )
        except (BotoCoreError, ClientError) as error:
            raise DeliveryStoreUnavailableError(str(error)) from error

    def get(self, campaign_id: str) -> PacingState | None:
        """The campaign's last state, None before its first step; raises DeliveryStoreUnavailableError."""
        try:
            item = self._client.get_item(TableName=self._table, Key={"campaign_id": {"S": campaign_id}}).get("Item")
        except (BotoCoreError, ClientError) as error:
            raise DeliveryStoreUnavailableError(str(error)) from error
        return None if item is None else _state(item)

    def list_states(self) -> dict[str, PacingState]:
        """Every campaign's last state this release can read (one paginated Scan); raises
        DeliveryStoreUnavailableError."""
        states: dict[str, PacingState] = {}
        try:
            for page in self._client.scan_pages(TableName=self._table):
                for item in page["Items"]:
                    state = _state(item)
                    if state is not None:
                        states[state.campaign_id] = state
        except (BotoCoreError, ClientError) as error:
            raise DeliveryStoreUnavailableError(str(error)) from error
        return states


def _state(item: "Mapping[str, AttributeValueTypeDef]") -> PacingState | None:
    """The item's state; None, logged by campaign id, when this release cannot read it (a step of another release
    during a deploy, an edit by hand). Its campaign then has no state and sits out as one not yet paced, alone: a
    parse error raised here stopped the whole catalog's load, every unbudgeted campaign with it."""
    try:
        return PacingState.model_validate_json(item[STATE_ATTRIBUTE]["S"])
    except (KeyError, ValueError) as error:  # pydantic's ValidationError is a ValueError
        # Imported here, as in campaign_store: observability reads the environment when first imported
        from adserve.core.observability import logger  # noqa: PLC0415

        campaign_id = item.get("campaign_id", {}).get("S")
        logger.error(
            "stored pacing state unreadable; its campaign sits out",
            extra={"campaign_id": campaign_id, "error": type(error).__name__},
        )
        return None
