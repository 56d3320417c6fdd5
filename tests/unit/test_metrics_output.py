"""Readable local metrics: EMF lines collected per thread, everything else passed straight through."""

import contextlib
import io
import json
import threading

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from devstack.metrics_output import ThreadRoutedStdout, emf_documents, metric_total, readable_metrics


def emf(namespace: str = "Adserve", **values: float) -> str:
    return json.dumps(
        {
            "_aws": {
                "Timestamp": 0,
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": [["service"]],
                        "Metrics": [{"Name": name, "Unit": "Count"} for name in values],
                    }
                ],
            },
            "service": "decide",
            **values,
        }
    )


def test_emf_lines_of_a_collecting_thread_are_kept_and_other_lines_pass_through() -> None:
    # Given a routed stdout
    target = io.StringIO()
    router = ThreadRoutedStdout(target)
    # When one thread collects while another prints at the same time
    started, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        started.wait()
        router.write(emf(Other=1) + "\n")
        release.set()

    worker = threading.Thread(target=other_thread)
    worker.start()
    with router.collecting() as collected:
        router.write('{"level":"INFO","message":"a log line"}')
        router.write("\n")
        router.write(emf(Decisions=1))
        started.set()
        release.wait(5)
        router.write("\n")
    worker.join()
    # Then only the collecting thread's EMF line is kept; its log line and the other thread's EMF went through
    assert [json.loads(line)["Decisions"] for line in collected] == [1]
    assert '"a log line"' in target.getvalue()
    assert '"Other"' in target.getvalue()
    assert '"Decisions"' not in target.getvalue()


def test_a_partial_line_left_at_the_end_of_an_invocation_is_written_out() -> None:
    target = io.StringIO()
    router = ThreadRoutedStdout(target)
    with router.collecting():
        router.write("no newline")
    assert target.getvalue() == "no newline"


def test_powertools_metrics_read_as_one_line() -> None:
    # Given what Powertools prints for a decision
    buffer = io.StringIO()
    router = ThreadRoutedStdout(buffer)
    metrics = Metrics(namespace="Adserve", service="decide")
    with router.collecting() as collected, contextlib.redirect_stdout(router):
        metrics.add_metric("Decisions", MetricUnit.Count, 1)
        metrics.add_metric("AdsReturned", MetricUnit.Count, 3)
        metrics.add_metric("DecideLatency", MetricUnit.Milliseconds, 1.84)
        with single_metric(name="EventsRejected", unit=MetricUnit.Count, value=2, namespace="Adserve") as metric:
            metric.add_dimension(name="reason", value="expired_token")
        metrics.flush_metrics()
    # Then the readable form names each metric, its extra dimensions and its unit
    line = readable_metrics("decide", emf_documents(collected))
    assert line.startswith("metrics decide: ")
    assert "Decisions=1" in line
    assert "AdsReturned=3" in line
    assert "DecideLatency=1.8ms" in line
    assert "EventsRejected{reason=expired_token}=2" in line
    assert buffer.getvalue() == ""


def test_counts_of_one_name_are_summed() -> None:
    document = json.loads(emf(AdsReturned=0))
    document["AdsReturned"] = [1.0, 2.0]
    assert readable_metrics("decide", [document]) == "metrics decide: AdsReturned=3"


def test_a_metric_total_sums_every_value_of_every_document_that_holds_it() -> None:
    # Given what Powertools prints: one value, several values of one name, and a document without the metric
    one, several, other = json.loads(emf(DecisionLogFailures=1)), json.loads(emf(DecisionLogFailures=0)), emf(X=1)
    several["DecisionLogFailures"] = [1.0, 2.0]
    assert metric_total([one, several, json.loads(other)], "DecisionLogFailures") == 4.0
    assert metric_total([], "DecisionLogFailures") == 0.0
