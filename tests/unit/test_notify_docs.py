"""The ConfigMap/Secret examples in docs/alerting.md are valid: every receiver parses
without errors and every Secret key it references is in the example's Secret."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from rollouts.notify.config import parse_config
from rollouts.notify.services import RECEIVER_TYPES

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerting.md"


def _examples() -> list[list[dict[str, object]]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    return [[d for d in yaml.safe_load_all(b) if isinstance(d, dict)] for b in blocks if "receiver." in b]


def test_every_receiver_example_parses_and_its_secret_keys_exist() -> None:
    seen: set[str] = set()
    examples = _examples()
    assert examples
    for docs in examples:
        data = next(d["data"] for d in docs if "data" in d)
        cfg = parse_config(data)  # type: ignore[arg-type]
        assert cfg.errors == (), cfg.errors
        secret_keys = {k for d in docs for k in (d.get("stringData") or {})}  # type: ignore[union-attr]
        for r in cfg.receivers.values():
            seen.add(r.type)
            for ref in r.refs().values():
                assert ref.key in secret_keys, (r.name, ref.key)
    assert seen == set(RECEIVER_TYPES)  # every type has a working example
