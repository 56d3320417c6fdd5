"""What the slot feature buys when later ads are heard less: the docs' table is the committed results file's."""

import copy
import json

from devstack import position_cost
from devstack.generated_tables import published_table


def test_the_table_is_the_committed_results() -> None:
    results = json.loads(position_cost.RESULTS.read_text())
    assert published_table("position-cost") == position_cost.markdown(results), (
        "run python -m devstack.position_cost --docs-only"
    )
    assert {row["variant"] for row in results["summary"]} == set(position_cost.VARIANTS)
    assert {row["world"] for row in results["summary"]} == set(position_cost.WORLDS)


def test_a_table_edited_by_hand_is_caught() -> None:
    results = json.loads(position_cost.RESULTS.read_text())
    edited = copy.deepcopy(results)
    edited["summary"][0]["estimate_over_truth_by_slot"][1] += 0.01
    assert position_cost.markdown(edited) != published_table("position-cost")
