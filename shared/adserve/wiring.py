"""Production wiring: builds each function's domain objects from its settings and real AWS clients."""

import random
from datetime import timedelta
from functools import cache

from adserve.catalog import CampaignCatalog
from adserve.dal.aws_clients import dynamodb_client, sqs_client
from adserve.dal.campaign_store import CampaignStore
from adserve.dal.decision_queue import DecisionQueue
from adserve.dal.frequency_cap_store import FrequencyCapStore
from adserve.dal.signing_key import load_signer
from adserve.decisioning import DecisionService, PolicySettings
from adserve.features import FeatureEncoder
from adserve.scoring import CtrModel
from adserve.settings import DecideSettings


def campaign_store(table_name: str) -> CampaignStore:
    return CampaignStore(dynamodb_client(), table_name)


def decision_service(settings: DecideSettings) -> DecisionService:
    encoder = FeatureEncoder()
    budget = settings.cap_read_timeout_seconds
    caps_client = dynamodb_client(connect_timeout=budget, read_timeout=budget, attempts=1)

    @cache
    def bootstrap_model() -> CtrModel:
        return CtrModel.load(settings.model_dir, encoder.spec)

    return DecisionService(
        catalog=CampaignCatalog(campaign_store(settings.campaigns_table_name), encoder, settings.catalog_ttl_seconds),
        counters=FrequencyCapStore(caps_client, settings.frequency_caps_table_name),
        scorer=bootstrap_model,
        decision_log=DecisionQueue(sqs_client(), settings.outcomes_queue_url),
        signer=lambda: load_signer(settings.signing_key_secret_id),
        encoder=encoder,
        policy=PolicySettings(
            epsilon=settings.exploration_epsilon, token_ttl=timedelta(seconds=settings.token_ttl_seconds)
        ),
        rng=random.Random(),
        tracking_base_url=settings.tracking_base_url,
    )
