"""Decide: POST /v1/decisions, and POST /v1/decisions/explain (a route of its own, so IAM grants it apart: an
explanation reads any listener's counters). Parses, calls the domain, shapes the response; nothing else."""

from adserve.core.collector import collector_paused

with collector_paused():  # the import allocates what it keeps: no collection until it is done
    from functools import cache
    from typing import Any

    from adserve.decisions.service import DecisionService
    from adserve.wiring import init_build, snapstart
    from adserve.wiring.decide import decision_service
    from adserve.wiring.settings import DecideSettings

    @cache
    def service() -> DecisionService:
        """Built once per execution environment (during Lambda's init, else on the first request), then reused."""
        with collector_paused():  # as the import: clients, catalog, model and keys are kept for the environment
            return decision_service(DecideSettings.from_env())

    with init_build.built_meanwhile(service):  # in Lambda the first request's reads overlap the HTTP layer's import
        from adserve.core.errors import InvalidInputError
        from adserve.core.observability import counting_degraded_invocations, logger, metrics, tracer
        from adserve.decisions.api import DecisionRequest, DecisionResponse
        from adserve.http_api.errors import body_refusals, error_doc, install_error_handlers
        from adserve.http_api.gateway import correlate_request, public_base_url, screen_body
        from adserve.http_api.router import Router
        from aws_lambda_powertools.utilities.typing import LambdaContext

        app = Router()
        install_error_handlers(app)


snapstart.register(prepare=service)  # with SnapStart on, the snapshot holds the built service

REFUSALS = {
    **body_refusals(),
    422: error_doc("Invalid request"),
    503: error_doc("A new environment could not read the campaigns or the keys; retry after Retry-After"),
}


@app.post(
    "/v1/decisions",
    summary="Choose ads for a listener",
    responses={200: {"description": "The chosen ads, best first; an empty list when none is eligible"}, **REFUSALS},
)
@tracer.capture_method(capture_response=False)  # tracking URLs carry tokens, which carry the listener id
def create_decision(request: DecisionRequest) -> DecisionResponse:
    if request.explain or request.explain_campaign is not None:
        raise InvalidInputError(EXPLAIN_ELSEWHERE, field="explain" if request.explain else "explain_campaign")
    return service().decide(request, request_base_url=public_base_url(app.current_event))


EXPLAIN_ELSEWHERE = (
    "explain and explain_campaign are asked of POST /v1/decisions/explain, a route of its own so that IAM can "
    "grant it to operators alone"
)


@app.post(
    "/v1/decisions/explain",
    summary="Why a listener would get these ads and not others (an operator's route; nothing is served)",
    responses={200: {"description": "The decision with its explanation; its ads carry no tracking URLs"}, **REFUSALS},
)
@tracer.capture_method(capture_response=False)
def explain_decision(request: DecisionRequest) -> DecisionResponse:
    return service().decide(request.explained(), request_base_url=public_base_url(app.current_event))


@logger.inject_lambda_context
@correlate_request
@metrics.log_metrics
@counting_degraded_invocations  # the canary's share (template.yaml, *CanaryDegradedAlarm)
@tracer.capture_lambda_handler(capture_response=False)
@screen_body
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
