"""``adserve explain``: why a listener got these ads and not others, as a table.

    adserve explain --request request.json [--api URL] [--campaign ID] [--terms N] [--json]
    adserve explain --listener L --country SE --device mobile --placement audio_midroll [--age-bucket 25-34]
                    [--content-type music] [--genre pop] [--hour 8] [--session S] [--max-ads 3]
                    [--exclude AD ...] [--consent personalise,cap_frequency,measure] [--api URL]

It calls the deployment's own POST /v1/decisions/explain (SigV4-signed with the caller's AWS credentials, like
any IAM caller; a route of its own, which IAM grants to operators), so the answer is what that deployment's
Decide does: its catalog, pacing states, caps table and model, with no access to any of them needed here. The
API is ``--api``, else ``$ADSERVE_API_URL``, else the local stack of ``make run``. The explain request counts
nothing (docs/api.md#explain).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from adserve.cli.arguments import checked
from adserve.dal.api_client import post_json

API_VARIABLE = "ADSERVE_API_URL"
LOCAL_API = "http://127.0.0.1:3000"
CONSENTS = ("personalise", "cap_frequency", "measure")


def add_explain_command(groups: argparse._SubParsersAction[Any]) -> None:
    command = groups.add_parser("explain", help="why each ad of the catalog was or was not served, as a table")
    command.add_argument("--api", help=f"the API's base URL (default: ${API_VARIABLE}, else {LOCAL_API})")
    command.add_argument("--request", type=Path, help="a POST /v1/decisions body (JSON); the flags below otherwise")
    command.add_argument("--listener", help="listener id")
    command.add_argument("--country", help="ISO country code, e.g. SE")
    command.add_argument("--device", help="mobile, desktop, tablet, smart_speaker, tv, car")
    command.add_argument("--placement", help="e.g. audio_midroll")
    command.add_argument("--age-bucket")
    command.add_argument("--content-type")
    command.add_argument("--genre")
    command.add_argument("--hour", type=int, help="the listener's local hour")
    command.add_argument("--session", help="session id (session caps)")
    command.add_argument("--max-ads", type=int)
    command.add_argument("--exclude", nargs="*", default=[], metavar="AD_ID")
    command.add_argument(
        "--consent", help=f"comma-separated permissions granted, of {', '.join(CONSENTS)} ('' grants none)"
    )
    command.add_argument("--campaign", help="list only this campaign's ads (explain_campaign)")
    command.add_argument(
        "--terms", type=_terms, default=5, help="largest logit terms shown per scored ad (default 5; 0: none)"
    )
    command.add_argument("--json", action="store_true", help="print the API's answer as it is")


def request_from(arguments: argparse.Namespace) -> dict[str, Any]:
    """The decision request of a file, or of the flags; explain is always on. Raises ValueError saying why not."""
    chosen = {} if arguments.campaign is None else {"explain_campaign": arguments.campaign}
    if arguments.request is not None:
        return {**_request_file(arguments.request), "explain": True, **chosen}
    missing = [f"--{name}" for name in ("listener", "country", "device", "placement") if not getattr(arguments, name)]
    if missing:
        raise ValueError(f"pass --request FILE or {', '.join(missing)}")
    context = {
        key: value
        for key, value in (
            ("content_type", arguments.content_type),
            ("genre", arguments.genre),
            ("local_hour", arguments.hour),
        )
        if value is not None
    }
    listener = {
        key: value
        for key, value in (
            ("id", arguments.listener),
            ("country", arguments.country),
            ("device", arguments.device),
            ("age_bucket", arguments.age_bucket),
            ("session_id", arguments.session),
            ("context", context or None),
        )
        if value is not None
    }
    request: dict[str, Any] = {"listener": listener, "placement": arguments.placement, "explain": True, **chosen}
    if arguments.max_ads is not None:
        request["max_ads"] = arguments.max_ads
    if arguments.exclude:
        request["exclude_ads"] = arguments.exclude
    if arguments.consent is not None:
        request["consent"] = _consent(arguments.consent)
    return request


_terms = checked(int, lambda terms: terms >= 0, "a number of terms (0 or more)")


def _request_file(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as error:  # JSON's and UTF-8's errors are ValueErrors
        raise ValueError(f"{path}: {error}") from error
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a JSON object")
    return {str(key): value for key, value in document.items()}


def _consent(text: str) -> dict[str, bool]:
    granted = {name.strip() for name in text.split(",") if name.strip()}
    unknown = granted - set(CONSENTS)
    if unknown:
        raise ValueError(f"--consent: unknown permission(s) {', '.join(sorted(unknown))}")
    return {name: name in granted for name in CONSENTS}


def run_explain_command(arguments: argparse.Namespace) -> int:
    try:
        document = request_from(arguments)
    except ValueError as error:
        print(f"adserve: {error}", file=sys.stderr)  # noqa: T201
        return 2
    api = (arguments.api or os.environ.get(API_VARIABLE) or LOCAL_API).rstrip("/")
    if not api.startswith(("http://", "https://")):
        print(f"adserve: --api must be an http(s) URL, not {api!r}", file=sys.stderr)  # noqa: T201
        return 2
    answer = _explained(api, document, arguments.campaign)
    if isinstance(answer, int):
        return answer
    if arguments.json:
        print(json.dumps(answer, indent=2))  # noqa: T201
    else:
        print(format_explanation(answer, terms=arguments.terms))  # noqa: T201
    return 0


def _explained(api: str, document: dict[str, Any], campaign: str | None) -> dict[str, Any] | int:
    """The API's explanation, or the exit status once the reason there is none was said."""
    try:
        status, answer = post_json(f"{api}/v1/decisions/explain", document)
    except ValueError as error:  # e.g. a port that is not a number
        print(f"adserve: --api {api!r} is not a URL to reach: {error}", file=sys.stderr)  # noqa: T201
        return 2
    except OSError as error:
        print(f"adserve: {api} cannot be reached: {error}", file=sys.stderr)  # noqa: T201
        return 1
    if status != 200 or not _is_explanation(answer):
        print(f"adserve: the API answered {status}, not an explanation: {json.dumps(answer)}", file=sys.stderr)  # noqa: T201
        return 1
    if campaign is not None and not answer["explanation"].get("ads"):
        # explain lists a campaign of any status: none listed, it is in no catalog Decide serves from (a typo?)
        print(f"adserve: campaign {campaign!r} is not in Decide's catalog", file=sys.stderr)  # noqa: T201
        return 1
    return dict(answer)


def _is_explanation(answer: Any) -> bool:
    """Whether *answer* has what ``format_explanation`` reads: another service at the URL answers something else."""
    return (
        isinstance(answer, dict)
        and isinstance(answer.get("explanation"), dict)
        and isinstance(answer.get("ads"), list)
        and "decision_id" in answer
    )


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def format_explanation(answer: dict[str, Any], *, terms: int = 5) -> str:
    """The explain response as an operator reads it: one row per ad, then each scored ad's largest terms."""
    explanation = answer["explanation"]
    ads = explanation["ads"]
    served = ", ".join(f"{ad['ad_id']} (rank {ad['rank']})" for ad in answer["ads"]) or "nothing"
    lines = [f"decision {answer['decision_id']}  model {answer['model_version']}  mode {answer['mode']}"]
    lines.append(f"served: {served}")
    rows = [["AD", "CAMPAIGN", "RULE", "SCORE", "VALUE", "P(RANK 1)", "WHY"]]
    for ad in ads:
        scoring = ad["scoring"]
        numbers = (
            [
                f"{scoring['score']:.4f}",
                f"{scoring['value_cpm']:g}",
                f"{scoring['rank_probabilities'][0]:.3f}" if scoring["rank_probabilities"] else "-",
            ]
            if scoring
            else ["-", "-", "-"]
        )
        rows.append([ad["ad_id"], ad["campaign_id"], ad["rule"], *numbers, ad["detail"]])
    lines += ["", *_table(rows)]
    omitted = explanation.get("omitted") or {}
    if omitted:
        counts = ", ".join(f"{count:,} {rule}" for rule, count in omitted.items())
        lines += ["", f"not listed, to keep the answer within Lambda's response limit: {counts}"]
    unavailable = explanation["contributions_unavailable"]
    if unavailable:
        lines += ["", f"no feature contributions: {unavailable}"]
        return "\n".join(lines)
    for ad in ads:
        scoring = ad["scoring"]
        if not scoring or scoring["contributions"] is None:
            continue
        parts = scoring["contributions"]
        named = [(name, value) for name, value in parts["fields"].items()] + list(parts["pairs"].items())
        largest = sorted(named, key=lambda item: -abs(item[1]))[:terms]
        fields_sum, pairs_sum = sum(parts["fields"].values()), sum(parts["pairs"].values())
        lines += [
            "",
            f"{ad['ad_id']}: logit {parts['logit']:+.4f} = bias {parts['bias']:+.4f} + fields {fields_sum:+.4f}"
            f" + pairs {pairs_sum:+.4f}; sigmoid -> score {scoring['score']:.4f}",
        ]
        for name, value in largest:
            shown = " x ".join(f"{field}={scoring['features'].get(field, '')}" for field in name.split("*"))
            lines.append(f"  {value:+.4f}  {shown}")
    return "\n".join(lines)
