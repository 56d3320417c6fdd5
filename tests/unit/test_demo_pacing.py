"""``make demo-pacing``'s simulated day meets its checks through the production pacing step, and the checks bite."""

import copy
from pathlib import Path

from devstack.demo_pacing import acceptance, simulate, table


def test_one_simulated_day_passes_every_check() -> None:
    summary = simulate(seed=7)
    assert len(summary["campaigns"]) >= 10
    assert {row["pacing"] for row in summary["campaigns"]} == {"even", "asap"}
    failed = [name for name, passed in acceptance(summary) if not passed]
    assert failed == []
    # And the checks are not vacuous: an over-delivering or late campaign fails them.
    broken = copy.deepcopy(summary)
    even = next(row for row in broken["campaigns"] if row["pacing"] == "even" and row["fillable"])
    even["delivered_share"] = 1.02
    even["max_gap_to_target"] = 0.06
    assert [passed for _, passed in acceptance(broken)][:3] == [False, False, False]


def test_the_readme_shows_what_the_demo_prints() -> None:
    # Given the simulated day the README quotes (seed 7, deterministic)
    summary = simulate(seed=7)
    printed = "\n".join(
        [table(summary), *(f"{'PASS' if passed else 'MISS'}  {name}" for name, passed in acceptance(summary))]
    )
    # Then the README's block is that output, so its figures cannot drift from the code
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    quoted = readme.split("As it printed (seed 7, `demo-output/pacing-summary.json`):\n\n```\n", 1)[1].split(
        "\n```", 1
    )[0]
    assert quoted == printed
