"""README's demo-run table: one full ``make demo``, phase by phase, rendered from the summary it published."""

import json
from typing import Any

from devstack import demo_report
from devstack.demo import DEMO_RUN
from devstack.demo_report import Phase, StackLoad
from devstack.generated_tables import published_table


def test_a_phase_through_the_stack_reports_its_rate_and_cpu_per_decision_by_process() -> None:
    load = StackLoad(seconds=100.0, cpu_seconds={"stack": 80.0, "moto": 240.0}, paused_seconds=2.04)
    phase = Phase("round", 30_000, 2_000, 0.07, through_stack=True, load=load)
    assert phase.cost() == {
        "seconds": 100.0,
        "decisions_per_second": 300.0,
        "cpu_ms_per_decision": {"stack": 2.67, "moto": 8.0},
        "paused_for_record_seconds": 2.0,
    }
    assert Phase("oracle", 50_000, 6_000, 0.12, through_stack=False).cost() == {}


def test_the_table_lists_the_phases_through_the_stack_with_the_run_and_its_machine() -> None:
    results: dict[str, Any] = {
        "machine": {"git_commit": "abc1234", "date": "2026-12-04T01:50:00+00:00", "cpu_model": "Xeon", "cores": 2},
        "total_seconds": 391.0,
        "retrains": [{"seconds": 9.2}, {"seconds": 14.0}],
        "acceptance": [{"passed": True}, {"passed": False}],
        "phases": [
            {
                "name": "bootstrap model (logging)",
                "decisions": 30_000,
                "decisions_per_second": 290.4,
                "cpu_ms_per_decision": {"stack": 0.82, "moto": 2.54},
                "paused_for_record_seconds": 3.0,
            },
            {"name": "oracle (true probabilities)", "decisions": 50_000},
        ],
    }
    lines = demo_report.run_markdown(results).splitlines()
    assert lines[0] == (
        "One `make demo` (`python -m devstack.demo --publish`) at commit abc1234 on 2026-12-04, Xeon, 2 cores: 391 s "
        "in all, of which the retrains 9, 14 s; 1 of 2 checks passed."
    )
    assert lines[4:] == ["| bootstrap model (logging) | 30,000 | 290 | 3.4: stack 0.82, moto 2.54 | 3 s |"]


def test_the_readme_table_is_the_published_run() -> None:
    results = json.loads(DEMO_RUN.read_text())
    assert published_table("demo-run") == demo_report.run_markdown(results), "run make demo ARGS=--publish"
    assert results["settings"]["rounds"] == [30_000, 25_000, 25_000]  # the full demo, not --quick
    assert len(results["retrains"]) == 3
