"""``ballast rebalance``: argument parsing and how a plan reads (the Temporal round trip is in tests/e2e)."""

from __future__ import annotations

import pytest

from activities.contracts import BrokerBalance, MoveSpec, PlanRebalanceResult, SpreadFacts
from ballast.cli import build_parser
from ballast.messages import RebalanceProgress
from ballast.rebalance_cli import parse_words, render_plan


@pytest.mark.parametrize(("words", "expected"), [
    (["demo"], ("run", "demo")), (["plan", "demo"], ("plan", "demo")), (["approve", "demo"], ("approve", "demo")),
    (["cancel", "kc-1"], ("cancel", "kc-1")), (["run", "plan"], ("run", "plan"))])
def test_action_defaults_to_run(words: list[str], expected: tuple[str, str]) -> None:
    assert parse_words(words) == expected


@pytest.mark.parametrize("words", [["explode", "demo"], ["plan", "demo", "extra"]])
def test_unknown_action_is_named(words: list[str]) -> None:
    with pytest.raises(ValueError, match="ACTION one of run, plan, approve, cancel"):
        parse_words(words)


def test_parser_accepts_namespace_and_reason() -> None:
    args = build_parser().parse_args(["rebalance", "plan", "demo", "-n", "kafka", "--reason", "disks"])
    assert (args.command, args.words, args.namespace, args.reason) == ("rebalance", ["plan", "demo"], "kafka", "disks")


def test_plan_shows_figures_per_broker_load_and_how_to_approve() -> None:
    plan = PlanRebalanceResult(
        batches=[[MoveSpec(topic="orders", partition=0, source=[0, 1], target=[2, 1], size_bytes=3 * 2**30)]],
        moves=1, bytes_to_move=3 * 2**30, lower_bound_bytes=2 * 2**30,
        disk_before=SpreadFacts(mean=1.0, max_deviation_percent=50.0),
        disk_after=SpreadFacts(mean=1.0, max_deviation_percent=4.0),
        brokers=[BrokerBalance(id=0, rack="a", replicas_before=2, replicas_after=1, bytes_before=6 * 2**30,
                               bytes_after=3 * 2**30),
                 BrokerBalance(id=2, replicas_before=0, replicas_after=1, bytes_after=3 * 2**30)])
    progress = RebalanceProgress(workflow_id="rebalance/default/demo/1", purpose="scale-out",
                                 state="AwaitingApproval", reason="scale-out from 2 to 3 brokers")
    text = render_plan(progress, plan)
    assert "rebalance/default/demo/1 (scale-out): AwaitingApproval -- scale-out from 2 to 3 brokers" in text
    assert "1 moves in 1 batches; 3 GiB to copy (lower bound 2 GiB)" in text
    assert "disk spread 50.0% -> 4.0%" in text
    assert "6 GiB -> 3 GiB" in text and "0 B -> 3 GiB" in text
    assert "ballast rebalance approve" in text
