"""The demo's outputs: the click-rate table, the acceptance checks, summary.json, report.md and a PNG plot."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Check",
    "DemoResult",
    "Phase",
    "RetrainStep",
    "StackLoad",
    "acceptance",
    "cpu_by_process",
    "off_policy_of",
    "run_markdown",
    "table",
    "write_outputs",
]


@dataclass(frozen=True)
class StackLoad:
    """What one phase of traffic through the local stack took: its wall time, the CPU of each of the stack's
    processes (the demo's own, with Decide and the pollers; moto's; Track's; Record's) and the time the traffic
    paused for Record to drain the queue."""

    seconds: float
    cpu_seconds: dict[str, float]
    paused_seconds: float


@dataclass(frozen=True)
class Phase:
    """Click rate of one policy: clicks / decisions, one ad per decision (max_ads=1), so per impression too."""

    name: str
    decisions: int
    clicks: int
    expected_ctr: float
    """Mean true click probability of the shown ads: the same rate without the Bernoulli noise of the clicks."""
    through_stack: bool
    model_version: str | None = None
    load: StackLoad | None = None
    """Set for the phases served through the stack."""

    @property
    def ctr(self) -> float:
        return self.clicks / self.decisions if self.decisions else 0.0

    def cost(self) -> dict[str, Any]:
        """Decisions per second and CPU per decision by process: the rate moves with the machine's other load, the
        CPU per decision with the work a decision costs, so CPU that stays flat from phase to phase says the stack
        does not slow down as its state grows (and which process would)."""
        if self.load is None:
            return {}
        per_decision = {part: round(s * 1000 / max(self.decisions, 1), 2) for part, s in self.load.cpu_seconds.items()}
        return {
            "seconds": round(self.load.seconds, 1),
            "decisions_per_second": round(self.decisions / max(self.load.seconds, 1e-9), 1),
            "cpu_ms_per_decision": per_decision,
            "paused_for_record_seconds": round(self.load.paused_seconds, 1),
        }


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class RetrainStep:
    """One retrain of the loop: what it learned from, how its holdout scored, when Decide served it."""

    version: str
    trained_on_decisions: int
    holdout_auc: float | None
    bayes_auc: float | None
    """AUC of the true click probabilities on the same holdout decisions: the best any model could do."""
    off_policy: dict[str, float | None]
    """IPS, SNIPS and DR estimates of this model's policy from its holdout decisions."""
    swap_seconds: float
    seconds: float
    """The retrain's wall time: reading the logs, building the dataset, training, evaluating, publishing."""


@dataclass
class DemoResult:
    """Everything the table, the checks and the three output files are made from.

    ``holdout_auc``, ``bayes_auc``, ``logged_decisions`` and ``off_policy`` are the last retrain's: the model
    that the "retrained" phase measured.
    """

    phases: list[Phase]
    holdout_auc: float | None
    bayes_auc: float | None
    logged_decisions: int
    off_policy: dict[str, float | None] = field(default_factory=dict)
    retrains: list[RetrainStep] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    total_seconds: float = 0.0

    def phase(self, prefix: str) -> Phase | None:
        return next((phase for phase in self.phases if phase.name.startswith(prefix)), None)


def off_policy_of(manifest: Mapping[str, Any]) -> dict[str, float | None]:
    """The IPS, SNIPS and DR estimates of a model's own policy, as its manifest's evaluation records them."""
    estimates = manifest.get("evaluation", {}).get("off_policy", {}).get("new", {})
    return {name: estimates.get(name) for name in ("ips", "snips", "dr")}


def _within(value: float, reference: float, tolerance: float) -> bool:
    return reference > 0 and abs(value - reference) <= tolerance * reference


def acceptance(result: DemoResult) -> list[Check]:
    """Issue 4's acceptance on this run; measured click rates are clicks / decisions on fresh traffic."""
    checks = []
    enough = result.logged_decisions >= 50_000
    checks.append(Check("≥ 50k logged decisions", enough, f"{result.logged_decisions:,} logged decisions"))
    if result.holdout_auc is not None and result.bayes_auc is not None:
        gap = result.bayes_auc - result.holdout_auc
        checks.append(
            Check(
                "holdout AUC within 0.02 of Bayes",
                gap <= 0.02,
                f"{result.holdout_auc:.4f} vs {result.bayes_auc:.4f} (gap {gap:+.4f})",
            )
        )
    bootstrap, retrained, oracle = result.phase("bootstrap"), result.phase("retrained"), result.phase("oracle")
    if bootstrap and retrained:
        lift = retrained.ctr / bootstrap.ctr - 1 if bootstrap.ctr else float("inf")
        checks.append(Check("retrained ≥ 20% above bootstrap", lift >= 0.20, f"lift {lift:+.1%}"))
    if retrained and oracle:
        gap = 1 - retrained.ctr / oracle.ctr if oracle.ctr else float("inf")
        checks.append(Check("retrained within 15% of oracle", gap <= 0.15, f"{gap:.1%} below the oracle"))
    snips = result.off_policy.get("snips")
    if retrained and snips is not None:
        ips = result.off_policy.get("ips")
        detail = f"SNIPS {snips:.4f} (IPS {ips if ips is None else round(ips, 4)}) vs measured {retrained.ctr:.4f}"
        checks.append(Check("SNIPS estimate within 10% of measured", _within(snips, retrained.ctr, 0.10), detail))
    return checks


def table(result: DemoResult) -> str:
    lines = [f"{'phase':<34} {'decisions':>10} {'clicks':>8} {'CTR':>8} {'E[CTR]':>8}  via"]
    for phase in result.phases:
        via = "stack" if phase.through_stack else "offline"
        lines.append(
            f"{phase.name:<34} {phase.decisions:>10,} {phase.clicks:>8,} {phase.ctr:>8.4f} {phase.expected_ctr:>8.4f}"
            f"  {via}"
        )
    return "\n".join(lines)


def summary(result: DemoResult, checks: list[Check]) -> dict[str, Any]:
    return {
        "phases": [
            {
                "name": phase.name,
                "decisions": phase.decisions,
                "clicks": phase.clicks,
                "ctr": round(phase.ctr, 6),
                "expected_ctr": round(phase.expected_ctr, 6),
                "through_stack": phase.through_stack,
                "model_version": phase.model_version,
            }
            | phase.cost()
            for phase in result.phases
        ],
        "holdout_auc": result.holdout_auc,
        "bayes_auc": result.bayes_auc,
        "logged_decisions": result.logged_decisions,
        "off_policy_estimate": result.off_policy,
        "retrains": [asdict(step) for step in result.retrains],
        "acceptance": [asdict(check) for check in checks],
        "settings": result.settings,
        "total_seconds": round(result.total_seconds, 1),
    }


def _markdown(result: DemoResult, checks: list[Check]) -> str:
    rows = "\n".join(
        f"| {p.name} | {p.decisions:,} | {p.clicks:,} | {p.ctr:.4f} | {p.expected_ctr:.4f} | "
        f"{'stack' if p.through_stack else 'offline'} |"
        for p in result.phases
    )
    retrains = "\n".join(
        f"| {number} | `{step.version}` | {step.trained_on_decisions:,} | {step.holdout_auc} | {step.bayes_auc} | "
        f"{step.off_policy.get('snips')} | {step.swap_seconds * 1000:.0f} ms |"
        for number, step in enumerate(result.retrains, start=1)
    )
    verdicts = "\n".join(f"- **{'PASS' if c.passed else 'MISS'}** {c.name}: {c.detail}" for c in checks)
    settings = "\n".join(f"- {name}: `{value}`" for name, value in result.settings.items())
    return f"""# adserve demo: learning from the logs

Click rate = clicks / decisions (one ad per decision, so also clicks / impressions). `E[CTR]` is the mean
true click probability of the ads shown (the simulator knows it): the same rate without click noise.

| phase | decisions | clicks | CTR | E[CTR] | via |
|---|---:|---:|---:|---:|---|
{rows}

Each retrain learned from every decision logged so far; its holdout is the latest 20% of those decisions, so
the last retrain's off-policy estimate comes from decisions the previous retrained model served. Bayes AUC
is the AUC of the true click probabilities on the same holdout decisions. "Served after" is how long
Decide, warm and never restarted, took to answer with the new version once it was promoted: it reads
the pointer at most every 5 s (`MODEL_POINTER_CHECK_SECONDS`), and a retrain takes longer than that, so
the first decision after the promotion downloads, verifies and swaps in the new model.

| retrain | version | decisions trained on | holdout AUC | Bayes AUC | SNIPS | served after |
|---:|---|---:|---:|---:|---:|---:|
{retrains}

Last retrain: holdout AUC {result.holdout_auc} against a Bayes AUC of {result.bayes_auc}; off-policy
estimate of its policy from the logs: {json.dumps(result.off_policy)}.

## Acceptance
{verdicts}

## Settings
{settings}

Total run time: {result.total_seconds:.0f} s.
"""


def _plot(result: DemoResult, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only the demo needs it, and only here

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    names = [phase.name for phase in result.phases]
    colours = ["tab:blue" if phase.through_stack else "tab:gray" for phase in result.phases]
    bars = axes.bar(range(len(names)), [phase.ctr for phase in result.phases], color=colours)
    axes.scatter(range(len(names)), [p.expected_ctr for p in result.phases], color="black", marker="_", s=400)
    for bar, phase in zip(bars, result.phases, strict=True):
        axes.annotate(
            f"{phase.ctr:.2%}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom"
        )
    axes.set_xticks(range(len(names)), names, rotation=15, ha="right", fontsize=8)
    axes.set_ylabel("click rate (clicks / decisions)")
    axes.set_title("Click rate per phase (blue: through the local stack; grey: offline; -: expected)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def write_outputs(result: DemoResult, checks: list[Check], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"plot": out_dir / "click_rates.png", "report": out_dir / "report.md", "summary": out_dir / "summary.json"}
    _plot(result, paths["plot"])
    paths["report"].write_text(_markdown(result, checks))
    paths["summary"].write_text(json.dumps(summary(result, checks), indent=2) + "\n")
    return paths


def cpu_by_process(cpu_ms_per_decision: Mapping[str, float]) -> str:
    """``Phase.cost``'s CPU per decision as the demo prints and README tabulates it: the total, then each process."""
    parts = ", ".join(f"{name} {ms:.2f}" for name, ms in cpu_ms_per_decision.items())
    return f"{sum(cpu_ms_per_decision.values()):.1f}: {parts}"


def run_markdown(results: Mapping[str, Any]) -> str:
    """README's ``demo-run`` region: how long one full ``make demo`` took where, phase by phase, from its summary."""
    machine = results["machine"]
    retrains = ", ".join(f"{step['seconds']:.0f}" for step in results["retrains"])
    passed = sum(check["passed"] for check in results["acceptance"])
    lines = [
        f"One `make demo` (`python -m devstack.demo --publish`) at commit {machine['git_commit']} on "
        f"{machine['date'][:10]}, {machine['cpu_model']}, {machine['cores']} cores: {results['total_seconds']:,.0f} s "
        f"in all, of which the retrains {retrains} s; {passed} of {len(results['acceptance'])} checks passed.",
        "",
        "| phase | decisions | decisions/s | CPU ms per decision, by process | paused for Record |",
        "|---|---:|---:|---|---:|",
    ]
    for phase in results["phases"]:
        if "cpu_ms_per_decision" not in phase:
            continue
        lines.append(
            f"| {phase['name']} | {phase['decisions']:,} | {phase['decisions_per_second']:,.0f} "
            f"| {cpu_by_process(phase['cpu_ms_per_decision'])} "
            f"| {phase['paused_for_record_seconds']:.0f} s |"
        )
    return "\n".join(lines) + "\n"
