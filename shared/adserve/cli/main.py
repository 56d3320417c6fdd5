"""``adserve``: operator commands against a deployed or local stack (boto3 honours ``AWS_ENDPOINT_URL``).

    adserve campaigns load examples/campaigns.json [--table NAME]
    adserve campaigns list [--table NAME] [--json]
    adserve logs --from 2026-11-25T00 --to 2026-11-25T23 [--kind decisions|outcomes|joined] [--bucket NAME]
    adserve caps show LISTENER_ID [--table NAME]
    adserve forget LISTENER_ID [--table NAME --bucket NAME --pseudonym-secret ID --pre-pseudonym-logs true|false]
                                                                                  (erasure, as POST /v1/erasures)
    adserve delivery CAMPAIGN_ID [--from --to --granularity hour|day --plot FILE.png]   (see adserve.cli.delivery)
    adserve train --from ... --to ... | adserve promote VERSION | adserve models   (see adserve.cli.models)
    adserve explain --request FILE | --listener L --country C --device D --placement P ...   (adserve.cli.explain)

A file is validated as a whole before anything is written, so a typo never leaves half a catalog behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from adserve.campaigns.model import Campaign, CampaignInput
from adserve.cli.arguments import identifier
from adserve.cli.delivery import DELIVERY_VARIABLE, add_delivery_command, run_delivery_command
from adserve.cli.explain import add_explain_command, run_explain_command
from adserve.cli.models import MODEL_GROUPS, add_model_commands, range_problem, run_model_command
from adserve.core.errors import (
    CampaignStoreUnavailableError,
    CapStoreUnavailableError,
    ConfigurationError,
    ConflictError,
    DeliveryStoreUnavailableError,
    ErasureUnavailableError,
    InvalidInputError,
    LogStoreUnavailableError,
    SecretKeysUnavailableError,
)
from adserve.dal.aws_clients import AWS_ERRORS, dynamodb_client, s3_client, secretsmanager_client
from adserve.dal.campaign_store import CampaignStore
from adserve.dal.frequency_cap_store import FrequencyCapStore
from adserve.dal.log_store import S3LogStore
from adserve.dal.secret_keys import read_pseudonymizer
from adserve.delivery.report import DeletedCampaigns, put_keeping_currency
from adserve.outcomes.logs import ReadStats, json_line, read_decisions, read_joined, read_outcomes
from adserve.privacy.pseudonyms import Pseudonymizer
from adserve.wiring.campaigns import campaign_store, delivery_store

__all__ = ["CampaignFileError", "load_campaigns", "main", "read_campaigns"]

TABLE_VARIABLE = "CAMPAIGNS_TABLE_NAME"
BUCKET_VARIABLE = "LOGS_BUCKET_NAME"
CAPS_TABLE_VARIABLE = "FREQUENCY_CAPS_TABLE_NAME"
PSEUDONYM_SECRET_VARIABLE = "PSEUDONYM_KEY_SECRET_ID"  # noqa: S105 - a variable's name, not a secret
PRE_PSEUDONYM_LOGS_VARIABLE = "PRE_PSEUDONYM_LOGS"
"""``true`` as ListenersFunction has it (``PrePseudonymLogs``): forget then records the legacy hash too."""
_listener_id = identifier("listener")


class CampaignFileError(ValueError):
    """A campaigns file is unreadable or holds invalid campaigns; ``reasons`` lists every problem."""

    def __init__(self, path: Path, reasons: list[str]) -> None:
        super().__init__(f"{path}: {len(reasons)} problem(s)")
        self.reasons = reasons


def read_campaigns(path: Path) -> list[Campaign]:
    """Every campaign of the JSON list at *path*, or CampaignFileError naming each invalid one."""
    try:
        documents = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:  # JSON's and UTF-8's errors are ValueErrors
        raise CampaignFileError(path, [str(error) or type(error).__name__]) from error
    if not isinstance(documents, list):
        raise CampaignFileError(path, ["the file must hold a JSON list of campaigns"])
    campaigns: list[Campaign] = []
    reasons: list[str] = []
    for index, document in enumerate(documents):
        label = f"[{index}]" + (f" {document.get('campaign_id')}" if isinstance(document, dict) else "")
        try:
            campaigns.append(CampaignInput.model_validate(document))
        except ValidationError as error:
            reasons.extend(f"{label}: {_location(problem)}{problem['msg']}" for problem in error.errors())
    seen: set[str] = set()
    owners: dict[str, str] = {}
    for campaign in campaigns:
        if campaign.campaign_id in seen:
            reasons.append(f"{campaign.campaign_id}: campaign_id appears more than once")
        seen.add(campaign.campaign_id)
        for creative in campaign.creatives:
            owner = owners.setdefault(creative.ad_id, campaign.campaign_id)
            if owner != campaign.campaign_id:
                reasons.append(f"{campaign.campaign_id}: ad_id {creative.ad_id} is also campaign {owner}'s")
    if reasons:
        raise CampaignFileError(path, reasons)
    return campaigns


_TABLE_ERRORS: tuple[type[Exception], ...] = (*AWS_ERRORS, CampaignStoreUnavailableError, DeliveryStoreUnavailableError)
"""Failures of the campaigns table (and of the delivery table a load checks deleted campaigns in): their clients',
and the stores' after the clients' retries."""


def load_campaigns(store: CampaignStore, campaigns: Sequence[Campaign], deleted: DeletedCampaigns | None = None) -> int:
    """Put every campaign (create or replace); the number written. With *deleted* (the delivery table), a
    campaign created again under a deleted one's id must keep its currency, as through the API.

    Raises InvalidInputError at the first the store refuses (a stored campaign's currency changed, an ad id of
    another's), ConflictError at one other writers kept changing while it was written, and
    CampaignStoreUnavailableError at one the table was too throttled or unreachable to write (or
    DeliveryStoreUnavailableError, the delivery table, read once before the first write and checked in each create),
    each saying how many before it were written: each put is its own write, so those stay.
    """
    owners = store.ad_owners()  # one Scan for the whole file, not one per campaign
    ads_of: dict[str, list[str]] = {}
    for ad_id, owner in owners.items():
        ads_of.setdefault(owner, []).append(ad_id)
    for written, campaign in enumerate(campaigns):
        try:
            if deleted is None:
                store.put(campaign, ad_owners=owners)
            else:
                if not written:  # read before the first write: it is checked in creates only, and a mistyped
                    deleted.deleted_campaign(campaign.campaign_id)  # table stopped a load after its replaces
                put_keeping_currency(store, deleted, campaign, ad_owners=owners)
        except (
            InvalidInputError,
            ConflictError,
            CampaignStoreUnavailableError,
            DeliveryStoreUnavailableError,
        ) as error:
            # not written: stop here, saying so (the error keeps its type and what else it carries)
            error.args = (f"{error}; the {written} campaigns before it were written, none after",)
            raise
        # the ads it holds now, not those it held: an ad it gave up may move to a campaign later in the file
        for ad_id in ads_of.get(campaign.campaign_id, []):
            del owners[ad_id]
        ads_of[campaign.campaign_id] = [creative.ad_id for creative in campaign.creatives]
        owners.update(dict.fromkeys(ads_of[campaign.campaign_id], campaign.campaign_id))
    return len(campaigns)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "logs": _logs,
        "delivery": run_delivery_command,
        "explain": run_explain_command,
        "forget": _forget,
    }
    commands.update(dict.fromkeys(MODEL_GROUPS, run_model_command))
    if arguments.group in commands:
        return commands[arguments.group](arguments)
    if arguments.group == "caps":
        return _caps(
            arguments.listener_id,
            arguments.table or os.environ.get(CAPS_TABLE_VARIABLE),
            arguments.pseudonym_secret or os.environ.get(PSEUDONYM_SECRET_VARIABLE),
        )
    table = arguments.table or os.environ.get(TABLE_VARIABLE)
    if not table:
        print(f"adserve: no table; pass --table or set {TABLE_VARIABLE}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        if arguments.command == "load":
            return _load(Path(arguments.file), table, arguments.delivery_table or os.environ.get(DELIVERY_VARIABLE))
        return _list(table, as_json=arguments.json)
    except _TABLE_ERRORS as error:
        print(f"adserve: {error}", file=sys.stderr)  # noqa: T201
        return 1


def _load(path: Path, table: str, delivery_table: str | None) -> int:
    try:
        campaigns = read_campaigns(path)
    except CampaignFileError as error:
        print(f"adserve: {error}; nothing was written", file=sys.stderr)  # noqa: T201
        for reason in error.reasons:
            print(f"  {reason}", file=sys.stderr)  # noqa: T201
        return 1
    try:
        deleted = None if delivery_table is None else delivery_store(delivery_table)
        count = load_campaigns(_store(table), campaigns, deleted)
    except (InvalidInputError, ConflictError, CampaignStoreUnavailableError, DeliveryStoreUnavailableError) as error:
        print(f"adserve: {error}", file=sys.stderr)  # noqa: T201
        return 1
    print(f"loaded {count} campaigns into {table}")  # noqa: T201
    return 0


def _list(table: str, *, as_json: bool) -> int:
    campaigns = _store(table).list_campaigns()
    if as_json:
        print(json.dumps([campaign.model_dump(mode="json") for campaign in campaigns], indent=2))  # noqa: T201
        return 0
    rows = [
        (
            c.campaign_id,
            c.advertiser_id,
            c.status.value,
            c.category,
            f"{c.value_cpm:g} {c.currency}",
            ",".join(c.placements),
        )
        for c in campaigns
    ]
    header = ("CAMPAIGN", "ADVERTISER", "STATUS", "CATEGORY", "CPM", "PLACEMENTS")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())  # noqa: T201
    print(f"{len(campaigns)} campaigns in {table}")  # noqa: T201
    return 0


def _logs(arguments: argparse.Namespace) -> int:
    """Print the logged rows of a time range as the trainer sees them (deduplicated); a summary to stderr."""
    bucket = arguments.bucket or os.environ.get(BUCKET_VARIABLE)
    if not bucket:
        print(f"adserve: no bucket; pass --bucket or set {BUCKET_VARIABLE}", file=sys.stderr)  # noqa: T201
        return 2
    if (problem := range_problem(arguments.start, arguments.end)) is not None:
        print(f"adserve: {problem}", file=sys.stderr)  # noqa: T201
        return 2
    from adserve.dal.erasure_store import S3ErasureLedger  # noqa: PLC0415 - see _forget

    client = s3_client()
    store, stats = S3LogStore(client, bucket), ReadStats()
    printed = 0
    try:
        erased = S3ErasureLedger(client, bucket).erased()
        if arguments.kind == "decisions":
            rows: Iterable[BaseModel] = read_decisions(store, arguments.start, arguments.end, stats, erased=erased)
        elif arguments.kind == "joined":
            rows = read_joined(store, arguments.start, arguments.end, stats, erased=erased)
        else:  # outcome rows carry no listener: an erased listener's join nothing once its decisions are dropped
            rows = read_outcomes(store, arguments.start, arguments.end, stats)
        for row in rows:
            print(json_line(row))  # noqa: T201
            printed += 1
    except (LogStoreUnavailableError, ErasureUnavailableError) as error:
        print(f"adserve: {error}", file=sys.stderr)  # noqa: T201
        return 1
    summary = {
        "kind": arguments.kind,
        "rows": printed,
        "dropped_erased": stats.dropped_erased,
        "duplicates_dropped": stats.duplicates_dropped,
        "malformed_lines_skipped": stats.malformed_lines,
        "unreadable_objects": stats.unreadable_objects,
        "unresolved_catalog": stats.unresolved_catalog,
        "late_outcomes": stats.late_outcomes,
        "reported_late_outcomes": stats.reported_late_outcomes,
        "objects_read": stats.objects,
    }
    print(json.dumps(summary), file=sys.stderr)  # noqa: T201
    return 0


def listener_pseudonyms(secret_id: str) -> Pseudonymizer:
    """The deployment's pseudonyms (its PseudonymKeySecret): what the tables hold instead of listener ids."""
    return read_pseudonymizer(secretsmanager_client(), secret_id)


def _caps(listener_id: str, table: str | None, secret_id: str | None) -> int:
    """Print a listener's live frequency counters, as Decide reads them (one Query, expired ones ignored)."""
    if not table or not secret_id:
        missing = (
            f"--table or {CAPS_TABLE_VARIABLE}" if not table else f"--pseudonym-secret or {PSEUDONYM_SECRET_VARIABLE}"
        )
        print(f"adserve: pass {missing}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        pseudonym = listener_pseudonyms(secret_id).listener(listener_id)
        counters = FrequencyCapStore(dynamodb_client(), table).read_counters(pseudonym, datetime.now(UTC))
    except SecretKeysUnavailableError as error:
        print(f"adserve: the pseudonym key is unreadable: {error}", file=sys.stderr)  # noqa: T201
        return 1
    except CapStoreUnavailableError as error:
        print(f"adserve: {error}", file=sys.stderr)  # noqa: T201
        return 1
    width = max((len(key) for key in counters), default=7)
    print(f"{'COUNTER'.ljust(width)}  IMPRESSIONS")  # noqa: T201
    for key, count in sorted(counters.items()):
        print(f"{key.ljust(width)}  {count}")  # noqa: T201
    print(f"{len(counters)} live counters for {listener_id} (pseudonym {pseudonym}) in {table}")  # noqa: T201
    return 0


def _forget(arguments: argparse.Namespace) -> int:
    """Erase a listener as POST /v1/erasures does; prints what was deleted (never the id)."""
    # Imported here: erasure logs through core.observability, whose Powertools objects read POWERTOOLS_* when
    # first imported, and the local stack imports this module before it sets the functions' environment.
    from adserve.wiring.listeners import erasure_service  # noqa: PLC0415
    from adserve.wiring.settings import ListenersSettings  # noqa: PLC0415

    table = arguments.table or os.environ.get(CAPS_TABLE_VARIABLE)
    bucket = arguments.bucket or os.environ.get(BUCKET_VARIABLE)
    secret_id = arguments.pseudonym_secret or os.environ.get(PSEUDONYM_SECRET_VARIABLE)
    if not table or not bucket or not secret_id:
        needed = (
            ("--table", table, CAPS_TABLE_VARIABLE),
            ("--bucket", bucket, BUCKET_VARIABLE),
            ("--pseudonym-secret", secret_id, PSEUDONYM_SECRET_VARIABLE),
        )
        missing = ", ".join(f"{flag} or {variable}" for flag, value, variable in needed if not value)
        print(f"adserve: pass {missing}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        # Read as ListenersFunction reads it, so the two record the same ledger entries
        settings = ListenersSettings.from_env(
            {
                "FREQUENCY_CAPS_TABLE_NAME": table,
                "LOGS_BUCKET_NAME": bucket,
                "PSEUDONYM_KEY_SECRET_ID": secret_id,
                **(
                    {PRE_PSEUDONYM_LOGS_VARIABLE: legacy}
                    if (legacy := arguments.pre_pseudonym_logs or os.environ.get(PRE_PSEUDONYM_LOGS_VARIABLE))
                    else {}
                ),
            }
        )
    except ConfigurationError as error:
        print(f"adserve: {error}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        erased = erasure_service(
            settings.frequency_caps_table_name,
            settings.logs_bucket_name,
            settings.pseudonym_key_secret_id,
            pre_pseudonym_logs=settings.pre_pseudonym_logs,
        ).erase(arguments.listener_id)
    except ErasureUnavailableError as error:
        print(f"adserve: {error}; nothing is lost by running it again", file=sys.stderr)  # noqa: T201
        return 1
    print(erased.model_dump_json(indent=2))  # noqa: T201
    return 0


def _hour(text: str) -> datetime:
    """``2026-11-25T13`` (or any ISO time; naive means UTC) -> that instant in UTC, in years 1970-9998: the
    windows computed around it (a reward window before, an hour after) stay within what datetime holds."""
    try:
        moment = datetime.fromisoformat(text if len(text) != 13 else f"{text}:00")
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError) as error:
        raise argparse.ArgumentTypeError(f"not an ISO hour like 2026-11-25T13: {text!r}") from error
    if not 1970 <= moment.year <= 9998:
        raise argparse.ArgumentTypeError(f"not an hour in years 1970-9998: {text!r}")
    return moment


def _store(table: str) -> CampaignStore:
    return campaign_store(table)


def _location(problem: Any) -> str:
    location = ".".join(str(part) for part in problem.get("loc", ()))
    return f"{location}: " if location else ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adserve", description="adserve operator commands")
    groups = parser.add_subparsers(dest="group", required=True)
    campaigns = groups.add_parser("campaigns", help="manage the campaign catalog")
    commands = campaigns.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="validate a JSON list of campaigns, then put them all")
    load.add_argument("file", help="JSON file holding a list of Campaign documents")
    load.add_argument("--table", help=f"campaigns table (default: ${TABLE_VARIABLE})")
    load.add_argument(
        "--delivery-table",
        help=f"delivery table, to keep a deleted campaign's currency when its id is used again (default: "
        f"${DELIVERY_VARIABLE}; without one, that is not checked)",
    )
    listing = commands.add_parser("list", help="list every campaign")
    listing.add_argument("--table", help=f"campaigns table (default: ${TABLE_VARIABLE})")
    listing.add_argument("--json", action="store_true", help="print the full documents as JSON")
    logs = groups.add_parser("logs", help="read the training logs of a time range (deduplicated) as JSON lines")
    logs.add_argument("--from", dest="start", type=_hour, required=True, help="first hour, UTC, e.g. 2026-11-25T00")
    logs.add_argument("--to", dest="end", type=_hour, required=True, help="last hour, UTC, included")
    logs.add_argument(
        "--kind",
        choices=("decisions", "outcomes", "joined"),
        default="joined",
        help="joined: one row per chosen ad with its features, propensity and outcome flags (default)",
    )
    logs.add_argument("--bucket", help=f"logs bucket (default: ${BUCKET_VARIABLE})")
    caps = groups.add_parser("caps", help="inspect frequency counters")
    caps_commands = caps.add_subparsers(dest="command", required=True)
    show = caps_commands.add_parser("show", help="a listener's live counters (campaign and advertiser caps)")
    show.add_argument("listener_id", type=_listener_id, help="the listener id, as sent in POST /v1/decisions")
    show.add_argument("--table", help=f"frequency caps table (default: ${CAPS_TABLE_VARIABLE})")
    show.add_argument("--pseudonym-secret", help=f"the pseudonym key's secret (default: ${PSEUDONYM_SECRET_VARIABLE})")
    forget = groups.add_parser(
        "forget", help="erase a listener: delete its counters, drop its logged rows from every later training run"
    )
    forget.add_argument("listener_id", type=_listener_id, help="the listener id, as sent in POST /v1/decisions")
    forget.add_argument("--table", help=f"frequency caps table (default: ${CAPS_TABLE_VARIABLE})")
    forget.add_argument("--bucket", help=f"logs bucket, which holds the erasure ledger (default: ${BUCKET_VARIABLE})")
    forget.add_argument(
        "--pseudonym-secret", help=f"the pseudonym key's secret (default: ${PSEUDONYM_SECRET_VARIABLE})"
    )
    forget.add_argument(
        "--pre-pseudonym-logs",
        choices=("true", "false"),
        help="whether the logs may hold rows from before pseudonyms, as the stack's PrePseudonymLogs output says: "
        f"true records their unkeyed hash too, as the route then does (default: ${PRE_PSEUDONYM_LOGS_VARIABLE}, "
        "else false)",
    )
    add_model_commands(groups, _hour)
    add_delivery_command(groups, _hour)
    add_explain_command(groups)
    return parser


CLI_SERVICE = "adserve-cli"
"""The ``service`` of the log lines a command writes (``adserve forget`` logs its erasure as the function does)."""


def console() -> int:
    """The `adserve` command: what the domain logs goes to stderr, so stdout holds only the command's output
    (`adserve forget ID | jq`)."""
    from adserve.core.observability import logger  # noqa: PLC0415 - not at import: devstack sets POWERTOOLS_* first

    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(sys.stderr)
    if not os.environ.get("POWERTOOLS_SERVICE_NAME"):  # else Powertools names the lines `service_undefined`
        logger.append_keys(service=CLI_SERVICE)
    try:
        status = main()
        sys.stdout.flush()  # here, not at exit: a reader gone by then made Python print its own traceback
        return status
    except BrokenPipeError:  # `adserve logs ... | head`: the reader has what it wanted
        # Python flushes stdout again at exit: point it at nothing so that flush does not raise as well
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(console())
