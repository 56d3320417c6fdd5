"""Match a request to the template's HTTP API routes the way API Gateway HTTP APIs do.

Literal segments beat ``{param}``, which beats greedy ``{proxy+}``; a method-specific route beats ``ANY``;
``$default`` catches the rest. Unlike REST APIs, a known path with another method is simply "not found".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from devstack.stack_description import HttpRoute

__all__ = ["RouteMatch", "Router"]


@dataclass(frozen=True)
class RouteMatch:
    route: HttpRoute
    path_parameters: dict[str, str]


class Router:
    def __init__(self, routes: Iterable[HttpRoute]) -> None:
        self._routes = sorted((route for route in routes if route.path != "$default"), key=_specificity)
        self._default = next((route for route in routes if route.path == "$default"), None)

    def match(self, method: str, raw_path: str) -> RouteMatch | None:
        segments = raw_path.strip("/").split("/") if raw_path.strip("/") else []
        for route in self._routes:
            if route.method not in (method.upper(), "ANY"):
                continue
            parameters = _match_segments(route.path, segments)
            if parameters is not None:
                return RouteMatch(route=route, path_parameters=parameters)
        return RouteMatch(route=self._default, path_parameters={}) if self._default else None


def _specificity(route: HttpRoute) -> tuple[int, int, int]:
    segments = _template_segments(route.path)
    greedy = int(bool(segments) and segments[-1].endswith("+}"))
    parameters = sum(segment.startswith("{") for segment in segments)
    return greedy, parameters, int(route.method == "ANY")


def _template_segments(path: str) -> list[str]:
    return path.strip("/").split("/") if path.strip("/") else []


def _match_segments(path_template: str, segments: list[str]) -> dict[str, str] | None:
    template = _template_segments(path_template)
    parameters: dict[str, str] = {}
    for index, part in enumerate(template):
        if part.startswith("{") and part.endswith("+}"):
            rest = segments[index:]
            if not rest:
                return None
            parameters[part[1:-2]] = unquote("/".join(rest))
            return parameters
        if index >= len(segments):
            return None
        if part.startswith("{") and part.endswith("}"):
            if not segments[index]:
                return None
            parameters[part[1:-1]] = unquote(segments[index])
        elif part != segments[index]:
            return None
    return parameters if len(template) == len(segments) else None
