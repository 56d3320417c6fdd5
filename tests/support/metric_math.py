"""CloudWatch metric math, the part the template's alarms write, evaluated for one interval: what an alarm's
expression decides from given counts, checked offline (CloudWatch itself is not in moto's reach)."""

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

Value = float | None
"""A query's value in the interval; None where the metric has no data point there."""

_ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_COMPARISONS: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
}


def alarm_value(queries: list[dict[str, Any]], metrics: Mapping[str, Value]) -> Value:
    """The value of the query with ReturnData true, given each MetricStat query's value by Id."""
    assert {query["Id"] for query in queries if "MetricStat" in query} == set(metrics), "give each metric a value"
    [returned] = [query["Id"] for query in queries if query.get("ReturnData", True)]
    return _Interval(queries, metrics).value_of(returned)


class _Interval:
    """The queries' values in one interval, each expression's computed once, on first use."""

    def __init__(self, queries: list[dict[str, Any]], metrics: Mapping[str, Value]) -> None:
        self.expressions = {query["Id"]: query["Expression"] for query in queries if "Expression" in query}
        self.known: dict[str, Value] = dict(metrics)

    def value_of(self, query_id: str) -> Value:
        if query_id not in self.known:
            text = self.expressions[query_id].replace(" AND ", " and ").replace(" OR ", " or ")
            self.known[query_id] = self.evaluate(ast.parse(text, mode="eval").body)
        return self.known[query_id]

    def evaluate(self, node: ast.expr) -> Value:
        match node:
            case ast.Constant(value=int() | float() as number):
                return float(number)
            case ast.Name(id=query_id):
                return self.value_of(query_id)
            case ast.Call(func=ast.Name(id=function), args=args):
                return self.call(function, args)
        terms = self.operands(node)
        if all(term is None for term in terms):
            return None
        return _combine(node, [0.0 if term is None else term for term in terms])  # as CloudWatch: a lacking term is 0

    def operands(self, node: ast.expr) -> list[Value]:
        match node:
            case ast.BinOp(left=left, right=right) | ast.Compare(left=left, comparators=[right]):
                return [self.evaluate(left), self.evaluate(right)]
            case ast.BoolOp(values=values):
                return [self.evaluate(value) for value in values]
        raise AssertionError(f"metric math this evaluator does not know: {ast.dump(node)}")

    def call(self, function: str, args: list[ast.expr]) -> Value:
        match function, args:
            case "FILL", [series, filler]:
                filled = self.evaluate(series)
                return self.evaluate(filler) if filled is None else filled
            case "IF", [condition, then, otherwise]:
                holds = self.evaluate(condition)
                return None if holds is None else self.evaluate(then if holds else otherwise)
        raise AssertionError(f"metric math function this evaluator does not know: {function}")


def _combine(node: ast.expr, terms: list[Any]) -> float:
    match node:
        case ast.BinOp(op=op):
            return _ARITHMETIC[type(op)](*terms)
        case ast.Compare(ops=[op]):
            return float(_COMPARISONS[type(op)](*terms))
        case ast.BoolOp(op=ast.And()):
            return float(all(terms))
    raise AssertionError(f"metric math this evaluator does not know: {ast.dump(node)}")
