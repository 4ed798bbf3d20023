"""Every stage depends on the code it runs: dvc.yaml's deps cover each stage script's import closure.

The closure is computed from the source (AST, nothing is imported or run): every ``import foresight_lib.x``,
``from foresight_lib.x import y`` and relative ``from ..x import y`` (at any depth, lazy imports inside functions
included), with the ``__init__.py`` of every package on the way, followed transitively. A module is covered when
a dep of the stage is that file or a directory above it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "foresight_lib"


def _module_file(module: str) -> Path | None:
    """The file of a dotted module name inside the package (a package is its ``__init__.py``), or None."""
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _with_packages(module: str) -> list[str]:
    """``a.b.c`` and the packages whose ``__init__`` importing it runs: ``a``, ``a.b``."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _imports(path: Path) -> set[str]:
    """Dotted names of the package modules that ``path`` imports (directly)."""
    rel = path.relative_to(ROOT).with_suffix("")
    here = list(rel.parts[:-1])  # the package a relative import starts from (also for an __init__.py)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                module = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != PACKAGE:
                continue
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names if _module_file(f"{module}.{alias.name}")}
    return {name for module in found for name in _with_packages(module)}


def import_closure(script: Path) -> set[Path]:
    """Every package file that running ``script`` may import, relative to the repository root."""
    seen: set[str] = set()
    todo = list(_imports(script))
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        assert path is not None, f"{script.name} imports {module}, which is not a file of {PACKAGE}"
        todo += _imports(path)
    return {_module_file(m).relative_to(ROOT) for m in seen}


def stages() -> dict[str, tuple[Path, list[str]]]:
    """dvc.yaml's stages (a ``foreach`` stage once, by its name): the script its cmd runs and its deps."""
    out = {}
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        body = stage.get("do", stage)
        modules = re.findall(r"\bpython\s+-m\s+stages\.(\w+)", body["cmd"])
        assert len(modules) == 1, f"stage {name}: cmd runs {modules}, expected one `python -m stages.<name>`"
        out[name] = (Path("stages", f"{modules[0]}.py"), [str(d) for d in body.get("deps", [])])
    return out


def _covered(module: Path, deps: list[str]) -> bool:
    return any(module == Path(d) or Path(d) in module.parents for d in deps)


def test_the_closure_follows_relative_lazy_and_package_imports():
    closure = import_closure(ROOT / "stages" / "frames.py")
    for module in (
        "foresight_lib/__init__.py",
        "foresight_lib/data/__init__.py",
        "foresight_lib/data/frames.py",
        "foresight_lib/data/real.py",  # imported inside a function
        "foresight_lib/params.py",
        "foresight_lib/errors.py",
        "foresight_lib/store.py",
        "foresight_lib/cli.py",
    ):
        assert Path(module) in closure, module
    assert Path("foresight_lib/probes/run.py") not in closure
    assert not _covered(Path("foresight_lib/store.py"), ["foresight_lib/data", "foresight_lib/store"])


@pytest.mark.parametrize("stage", sorted(stages()))
def test_deps_cover_the_code_the_stage_runs(stage: str):
    script, deps = stages()[stage]
    missing = sorted(str(m) for m in import_closure(ROOT / script) | {script} if not _covered(m, deps))
    assert not missing, f"dvc.yaml stage {stage!r} runs code it does not declare as deps: {missing}"


def test_metric_files_survive_a_failed_run():
    """Every metric is ``persist: true``: DVC would otherwise delete it before the stage runs, and a failed run
    would lose the last good numbers (README "Failure recovery")."""
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        for metric in stage.get("do", stage).get("metrics", []):
            (path, flags), *_ = metric.items()
            assert flags.get("persist") is True, f"stage {name}: metric {path} is not persist: true"
