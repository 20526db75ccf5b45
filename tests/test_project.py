"""Project-level checks: packaging metadata, the conda mirror, the README's two commands."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_mirrors_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_norm(r) for r in py["dependencies"]} | {_norm(r) for r in py["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    got = {_norm(r) for r in pip if not r.startswith("-e")}
    assert got == wanted, f"only in pyproject: {sorted(wanted - got)}; only in environment.yml: {sorted(got - wanted)}"
    assert "python=3.11" in env["dependencies"]


def test_pins_that_matter():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps and "jupyter-book==1.0.4.post1" in deps


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S)
    assert blocks, "README has no code block"
    first = [line.strip() for line in blocks[0].strip().splitlines() if line.strip() and not line.strip().startswith("#")]
    assert first == ["make book", "make test"], first


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_console_script_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["hipaug"] == "hipaug.cli:main"


def test_citation_file_is_cff_and_agrees_with_the_project():
    root = Path(__file__).resolve().parents[1]
    cff = yaml.safe_load((root / "CITATION.cff").read_text(encoding="utf-8"))
    meta = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):  # required by CFF 1.2
        assert cff.get(key), f"CITATION.cff lacks {key}"
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    assert str(cff["version"]) == meta["version"] and cff["license"] == meta["license"]
    paper = [r for r in cff["references"] if str(r.get("doi", "")).lower() == "10.1109/taai48200.2019.8959908"]
    assert len(paper) == 1 and {a["family-names"] for a in paper[0]["authors"]} == {"Lin", "Chung"}
    assert (root / "LICENSE").read_text(encoding="utf-8").startswith(f"{meta['license']} License")
