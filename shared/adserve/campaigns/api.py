"""Models of the campaign admin API beyond the Campaign document itself."""

from pydantic import BaseModel

from adserve.campaigns.model import Campaign


class CampaignListResponse(BaseModel):
    campaigns: list[Campaign]
