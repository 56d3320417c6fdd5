"""``make demo-pacing``'s simulated day meets its checks through the production pacing step, and the checks bite."""

import copy

from devstack.demo_pacing import acceptance, simulate


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
