"""Budget pacing's throttle in Decide: each paced campaign competes with its serve probability.

Applied to the targeted candidates before caps and scoring, with one draw per campaign (its creatives compete
or sit out together). The probabilities came with the catalog (no read per decision), and each kept
candidate's probability goes into the decision record (``LoggedCandidate.serve_probability``).
"""

import random
from collections.abc import Sequence

from adserve.decisions.targeting import AdCandidate


def throttle(
    candidates: Sequence[AdCandidate], rng: random.Random, drawn: dict[str, float] | None = None
) -> Sequence[AdCandidate]:
    """The candidates whose campaign won its draw (one pass; an unpaced candidate costs one comparison).

    ``drawn``, when given (explain), receives each paced campaign's draw: it lost when draw >= probability.
    """
    draws: dict[str, bool] = {}
    draw = rng.random
    kept = []
    for ad in candidates:
        probability = ad.serve_probability
        if probability < 1.0:
            campaign_id = ad.campaign.campaign_id
            keep = draws.get(campaign_id)
            if keep is None:
                value = draw()
                keep = draws[campaign_id] = value < probability
                if drawn is not None:
                    drawn[campaign_id] = value
            if not keep:
                continue
        kept.append(ad)
    return kept
