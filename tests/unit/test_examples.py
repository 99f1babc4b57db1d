"""Every example in examples/ is a valid KafkaCluster: what the README tells people to apply must work."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ballast.spec import API_VERSION, KIND
from ballast.validation import parse_spec

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert {p.name for p in EXAMPLES} >= {"kafkacluster.yaml", "kafkacluster-elastic.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_a_valid_kafkacluster(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert (doc["apiVersion"], doc["kind"]) == (API_VERSION, KIND)
    spec, errors = parse_spec(doc["spec"])
    assert spec is not None and errors == []
