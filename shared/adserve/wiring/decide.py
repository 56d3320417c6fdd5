"""Decide's wiring: catalog, caps store with its own time budget, the models (bootstrap + registry), the queue."""

import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from functools import cache, partial

from aws_lambda_powertools.metrics import MetricUnit

from adserve.core.errors import ModelLoadError
from adserve.core.observability import MetricName, logger, metrics
from adserve.core.refreshing import Reloadable
from adserve.dal.aws_clients import (
    drop_connections,
    dynamodb_client,
    s3_client,
    secretsmanager_client,
    sqs_send_client,
)
from adserve.dal.campaign_store import CampaignStore
from adserve.dal.decision_queue import DecisionQueue
from adserve.dal.frequency_cap_store import FrequencyCapStore
from adserve.dal.log_store import S3LogStore
from adserve.dal.model_store import S3ModelStore
from adserve.dal.pacing_store import DynamoPacingStore
from adserve.decisions.catalog import CampaignCatalog
from adserve.decisions.policy import exploration_policy
from adserve.decisions.service import DecisionService, PolicySettings
from adserve.models.ctr_model import CtrModel
from adserve.models.features import FeatureEncoder
from adserve.models.serving import ModelProvider
from adserve.privacy.consent import ConsentRules
from adserve.wiring import snapstart
from adserve.wiring.secret_keys import pseudonym_keys, signing_keys
from adserve.wiring.settings import DecideSettings

FIRST_REQUEST_READS = 4
"""The catalog, the model pointer, the signing keys and the pseudonym keys."""


@contextmanager
def first_request_reads() -> Iterator[Callable[[Callable[[], object]], None]]:
    """Start each of the first request's independent reads as soon as its client exists, on its own thread.

    The request then waits for the slowest read, not for their sum, and the clients made after a read started
    (botocore's CPU) overlap it instead of delaying it. Each load is the lazy getter the request itself calls,
    so afterwards the request finds the values loaded. A load that fails is left to the request's own call,
    which retries and reports it as it always did (a failing read is attempted twice on a cold start, at worst).
    """
    futures: list[Future[object]] = []
    with ThreadPoolExecutor(max_workers=FIRST_REQUEST_READS, thread_name_prefix="first-request") as pool:
        yield lambda load: futures.append(pool.submit(load))
        for future in futures:
            future.exception()


def after_restore(rng: random.Random, cached: Sequence[Reloadable]) -> None:
    """SnapStart's after-restore step: every environment restored from one snapshot would otherwise draw the
    same exploration from the same rng state, and reuse sockets and values from when the snapshot was taken.

    The values are then read here, at once on threads (``first_request_reads``), rather than one after another on
    the first request: of unknown age, each must be read before it serves, and with dependencies stalled their
    budgets added up past the 3 s timeout of that request; one the snapshot never loaded is loaded here too. A
    load that fails is tried again by a request: the catalog or keys ``FIRST_LOAD_RETRY_SECONDS`` later, as any
    reload of a value of unknown age (meanwhile the catalog serves no ads and the keys are the snapshot's), the
    model pointer at its next check (an unreadable pointer keeps the snapshot's model)."""
    drop_connections()
    rng.seed()
    random.seed()  # the module's own state: the SDK clients' retry jitter, which would otherwise retry in lockstep
    for value in cached:
        value.cache.expire()
    with first_request_reads() as start:
        for value in cached:
            start(value.read)


def decision_service(settings: DecideSettings) -> DecisionService:
    encoder = FeatureEncoder()

    @cache
    def bootstrap_model() -> CtrModel:
        try:
            return CtrModel.load(settings.model_dir, encoder.spec)
        except ModelLoadError:
            logger.exception("model load failed", extra={"model_dir": str(settings.model_dir)})
            metrics.add_metric(MetricName.MODEL_LOAD_FAILURES, MetricUnit.Count, 1)
            raise

    # Clients in the order of the first request's critical path: the catalog's (two Scans, then the snapshot
    # put) first, then the keys' and the model pointer's; the clients only decide() uses come last, made while
    # those reads are in flight.
    with first_request_reads() as start:
        # The catalog refreshes inline on a request too: each page of its Scans gets one attempt of at most
        # 1.5 s, and a failed refresh keeps serving the snapshot (up to CATALOG_MAX_AGE_SECONDS).
        catalog_client = dynamodb_client(connect_timeout=0.5, read_timeout=1.0, attempts=1)
        catalog = CampaignCatalog(
            CampaignStore(catalog_client, settings.campaigns_table_name),
            encoder,
            settings.catalog_ttl_seconds,
            max_age_seconds=settings.catalog_max_age_seconds,
            pacing=DynamoPacingStore(catalog_client, settings.pacing_table_name),
            pacing_max_age=timedelta(seconds=settings.pacing_max_age_seconds),
            exchange_rates=settings.rates,
            # One put per new catalog version per environment, inside a catalog load (on a request when it is a
            # refresh): one attempt, 250 ms to connect and 500 ms to read; a failed put only keeps records inline.
            archive=S3LogStore(
                s3_client(connect_timeout=0.25, read_timeout=0.5, attempts=1), settings.logs_bucket_name
            ),
        )
        start(catalog.warm)
        secrets_client = secretsmanager_client()  # one client (and its kept-alive connections) for both secrets
        keys = signing_keys(
            secrets_client, settings.signing_key_secret_id, adoption_seconds=settings.signing_key_adoption_seconds
        )
        pseudonyms = pseudonym_keys(secrets_client, settings.pseudonym_key_secret_id)
        start(keys.signer)
        start(pseudonyms.get)
        models = ModelProvider(
            # A small time budget: the pointer check runs inline on a request (see adserve.models.serving).
            store=S3ModelStore(
                s3_client(connect_timeout=0.5, read_timeout=1.0, attempts=1), settings.models_bucket_name
            ),
            bootstrap=bootstrap_model,
            spec=encoder.spec,
            cache_dir=settings.model_cache_dir,
            check_seconds=settings.model_pointer_check_seconds,
        )
        start(models.current)
        budget = settings.cap_read_timeout_seconds
        caps_client = dynamodb_client(connect_timeout=budget, read_timeout=budget, attempts=1)
        # One attempt within a small budget: botocore's defaults (three attempts, 1 s connect, 2 s read) outlast
        # the function's 3 s timeout, and a decision must not wait on its own log line.
        send_budget = settings.decision_log_timeout_seconds
        queue_client = sqs_send_client(connect_timeout=send_budget, read_timeout=send_budget, attempts=1)
    rng = random.Random()
    cached = (models.reloadable(), pseudonyms.reloadable())
    snapstart.on_restore("decide", partial(after_restore, rng, (catalog.reloadable(), *cached, keys.reloadable())))
    return DecisionService(
        catalog=catalog,
        counters=FrequencyCapStore(caps_client, settings.frequency_caps_table_name),
        scorer=models,
        decision_log=DecisionQueue(queue_client, settings.outcomes_queue_url),
        signer=keys.signer,
        pseudonyms=pseudonyms.get,
        consent=ConsentRules(settings.default_consent_policy, settings.tcf_vendor_id or None),
        encoder=encoder,
        policy=PolicySettings(
            exploration=exploration_policy(
                settings.exploration_policy,
                settings.exploration_gamma
                if settings.exploration_policy == "squarecb"
                else settings.exploration_epsilon,
                settings.exploration_optimism,
            ),
            token_ttl=timedelta(seconds=settings.token_ttl_seconds),
            prerank_top_k=settings.prerank_top_k,
            gamma_scale=settings.exploration_gamma_scale,
        ),
        rng=rng,
        tracking_base_url=settings.tracking_base_url,
        cached=cached,
        signing_keys=keys.reloadable(),
    )
