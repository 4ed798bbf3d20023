"""The design notes the code cites are the repository's own: every `design.md section N` names a section of
docs/design.md, and nothing cites a file outside the repository (the former `../shared/DESIGN.md`)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITING = ("foresight_lib", "stages", "tests", "benchmarks", "profiles", "README.md", "pyproject.toml", "dvc.yaml")


def _texts() -> dict[Path, str]:
    files = [ROOT / c for c in CITING if (ROOT / c).is_file()]
    files += [
        f
        for c in CITING
        if (ROOT / c).is_dir()
        for f in (ROOT / c).rglob("*")
        if f.suffix in {".py", ".md", ".json", ".yaml"}
    ]
    return {f: f.read_text() for f in files if f != Path(__file__)}


def test_citations_name_sections_of_docs_design_md() -> None:
    sections = set(re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "design.md").read_text(), re.M))
    cited = {(f, n) for f, text in _texts().items() for n in re.findall(r"design\.md[`]? section (\d+)", text)}
    assert cited, "the code cites docs/design.md"
    wrong = sorted(f"{f.relative_to(ROOT)}: section {n}" for f, n in cited if n not in sections)
    assert not wrong, f"cited sections that docs/design.md lacks: {wrong}"
    outside = sorted(str(f.relative_to(ROOT)) for f, text in _texts().items() if "DESIGN.md" in text)
    assert not outside, f"cites DESIGN.md, which the repository does not hold: {outside}"
