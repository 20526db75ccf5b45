"""The layout's limits: no module over MAX_MODULE_LINES lines, no function over MAX_FUNCTION_LINES.

An exception names its reason here (and in CONTRIBUTING.md); the list can only shrink by design.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hipaug"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
# "path" or "path::qualname" -> why it is longer than the limit
EXCEPTIONS: dict[str, str] = {}


def module_lengths() -> dict[str, int]:
    """Line count of every module of the package."""
    return {p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
            for p in sorted(PACKAGE.rglob("*.py"))}


def function_lengths() -> dict[str, int]:
    """Lines of every function and method ("path::Class.name"), decorators and docstring included."""
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        rel = p.relative_to(ROOT).as_posix()

        def walk(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    out[f"{rel}::{prefix}{child.name}"] = child.end_lineno - start + 1
                    walk(child, f"{prefix}{child.name}.")
                elif isinstance(child, ast.ClassDef):
                    walk(child, f"{prefix}{child.name}.")

        walk(ast.parse(p.read_text(encoding="utf-8")), "")
    return out


def test_no_module_over_the_limit():
    long = {k: n for k, n in module_lengths().items() if n > MAX_MODULE_LINES and k not in EXCEPTIONS}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them, or name the reason in EXCEPTIONS): {long}"


def test_no_function_over_the_limit():
    long = {k: n for k, n in function_lengths().items() if n > MAX_FUNCTION_LINES and k not in EXCEPTIONS}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them, or name the reason in EXCEPTIONS): {long}"


def test_exceptions_are_still_needed():
    sizes = {**module_lengths(), **function_lengths()}
    stale = [k for k in EXCEPTIONS if sizes.get(k, 0) <= (MAX_MODULE_LINES if "::" not in k else MAX_FUNCTION_LINES)]
    assert not stale, f"EXCEPTIONS entries that are gone or now within the limit (remove them): {stale}"


def _lint_imports(tmp_path: Path, inject: str | None = None):
    """Run lint-imports on a copy of the package, optionally with one extra import line in a module."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(PACKAGE, tmp_path / "hipaug", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if inject:
        module, line = inject.split(":", 1)
        target = tmp_path / module
        target.write_text(target.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})


def test_import_contracts_hold(tmp_path):
    res = _lint_imports(tmp_path)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "Contracts: 4 kept, 0 broken." in res.stdout, res.stdout[-1000:]


def test_import_contracts_fail_on_a_wrong_import(tmp_path):
    """A model that imports the pipeline breaks the layers and the models contract, and lint-imports says so."""
    res = _lint_imports(tmp_path, "hipaug/models/vgg.py:from hipaug.pipeline import Pipeline  # deliberately wrong")
    assert res.returncode != 0
    assert "hipaug.models.vgg -> hipaug.pipeline" in res.stdout and "BROKEN" in res.stdout, res.stdout[-2000:]
