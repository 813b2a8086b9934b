"""Every consumer contract committed under contracts/<provider>/consumers/ is verified: its
provider has contracts/<provider>/test_<provider>_consumers.py, whose ProviderStates has a
handler for every state the interactions assume (checked here without a service; the
replay itself runs with the contract suites)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from harness import ProviderStates

ROOT = Path(__file__).resolve().parents[1]


def unverified(contracts: Path, package: str = "contracts") -> list[str]:
    """What is recorded under ``contracts`` but not verified, one line each."""
    problems = []
    for folder in sorted({path.parent.parent for path in contracts.glob("*/consumers/*.json")}):
        provider = folder.name
        module = folder / f"test_{provider}_consumers.py"
        if not module.exists():
            problems.append(f"{provider}: consumers recorded, but no {module.name} replays them")
            continue
        loaded = importlib.import_module(f"{package}.{provider}.{module.stem}")
        states = [value for value in vars(loaded).values() if isinstance(value, ProviderStates)]
        if len(states) != 1:
            problems.append(f"{provider}: {module.name} has {len(states)} ProviderStates, not 1")
            continue
        problems += [f"{provider}: no handler: {line}" for line in states[0].unsupported()]
    return problems


def test_every_recorded_contract_is_replayed_with_every_state_handled() -> None:
    assert list((ROOT / "contracts").glob("*/consumers/*.json")), "no consumer contracts"
    assert unverified(ROOT / "contracts") == []


def test_a_provider_without_a_replay_or_a_handler_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = "shop_contracts"
    root = tmp_path / package
    for provider in ("user", "auth"):
        (root / provider / "consumers").mkdir(parents=True)
        (root / provider / "consumers" / "shop.json").write_text(
            '{"service": "x.v1.X", "interactions": [{"test": "t.py::test_a", "rpc": "Get",'
            ' "given": [{"state": "a user is banned", "params": {}}]}]}'
        )
    (root / "__init__.py").write_text("")
    (root / "user" / "__init__.py").write_text("")
    (root / "user" / "test_user_consumers.py").write_text(
        "from pathlib import Path\nfrom harness import ProviderStates\n"
        "states = ProviderStates(Path(__file__).parent)\n"
        "@states.state('a user exists')\nasync def exists(stub): ...\n"
    )
    assert unverified(root, package) == [
        "auth: consumers recorded, but no test_auth_consumers.py replays them",
        "user: no handler: shop: t.py::test_a assumes 'a user is banned'",
    ]
