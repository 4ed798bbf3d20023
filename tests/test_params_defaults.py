"""One source of defaults: params.yaml writes out every default of foresight_lib/params.py, with the same value.

So the tests (which build params from params.py's defaults) test the default the README runs, and a key added to
one file and not the other, or changed in one only, fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from foresight_lib.params import Params

ROOT = Path(__file__).resolve().parents[1]


def _named(tree: dict[str, Any], path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Sections whose default is empty: entries the user names (``points``, each kind of adapter), no defaults."""
    found = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            found |= {(*path, key)} if not value else _named(value, (*path, key))
    return found


NAMED = _named(Params().model_dump(mode="json"))


def _flat(tree: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        here = (*path, key)
        if here in NAMED:
            continue
        out.update(_flat(value, here) if isinstance(value, dict) else {".".join(here): value})
    return out


def test_params_yaml_is_the_defaults_of_params_py():
    assert {("points",), ("adapter", "single"), ("adapter", "dual_stream")} <= NAMED
    defaults = _flat(Params().model_dump(mode="json"))
    written = _flat(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert not defaults.keys() - written.keys(), f"params.yaml leaves out: {sorted(defaults.keys() - written.keys())}"
    assert not written.keys() - defaults.keys(), (
        f"params.yaml has no default for: {sorted(written.keys() - defaults.keys())}"
    )
    differ = {
        key: {"params.yaml": written[key], "params.py": value}
        for key, value in defaults.items()
        if written[key] != value
    }
    assert not differ, f"params.yaml and the defaults of foresight_lib/params.py disagree: {differ}"
