"""The layout's limits and contracts: module and function sizes, import layers without cycles, no private
name used across modules, and a README that names the modules there are.

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
    assert "Contracts: 5 kept, 0 broken." in res.stdout, res.stdout[-1000:]


def test_import_contracts_fail_on_a_wrong_import(tmp_path):
    """A model that imports the pipeline breaks the layers and the models contract, and lint-imports says so."""
    res = _lint_imports(tmp_path, "hipaug/models/vgg.py:from hipaug.pipeline import Pipeline  # deliberately wrong")
    assert res.returncode != 0
    assert "hipaug.models.vgg -> hipaug.pipeline" in res.stdout and "BROKEN" in res.stdout, res.stdout[-2000:]


def test_import_contracts_fail_on_an_import_cycle(tmp_path):
    """Two pipeline modules that import each other break the no-cycles contract, whatever the layers say."""
    res = _lint_imports(tmp_path, "hipaug/pipeline/step.py:from hipaug.pipeline import run  # deliberately circular")
    assert res.returncode != 0
    assert "No cycles are allowed in hipaug.pipeline" in res.stdout and "BROKEN" in res.stdout, res.stdout[-2000:]


def private_uses(root: Path = PACKAGE) -> list[str]:
    """Every use of another module's private name: `from m import _x`, `m._x`, or `obj._x` of a private attribute
    another module defines (`self._x = ...`); a module's own private names are its business."""
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.py"))}
    owners: dict[str, set[Path]] = {}  # private attribute name -> the modules that set it on self/cls
    for p, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr) \
                    and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                owners.setdefault(node.attr, set()).add(p)
    found = []
    for p, tree in trees.items():
        rel = p.relative_to(root.parent).as_posix()
        modules = {a.asname or a.name: a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                   if a.name.startswith("hipaug")}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hipaug"):
                found += [f"{rel}:{node.lineno} imports {node.module}.{a.name}" for a in node.names if _private(a.name)]
            elif isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name):
                if node.value.id in modules:
                    found.append(f"{rel}:{node.lineno} uses {modules[node.value.id]}.{node.attr}")
                elif node.value.id not in ("self", "cls") and owners.get(node.attr, {p}) - {p}:
                    found.append(f"{rel}:{node.lineno} uses {node.value.id}.{node.attr} of another module")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_uses_another_modules_private_names():
    assert private_uses() == [], "make the name public, or move the code that needs it next to it"


def test_private_use_is_found(tmp_path):
    """The check can fail: an import of a private name and a reach into another object's private state."""
    pkg = tmp_path / "hipaug"
    pkg.mkdir()
    (pkg / "a.py").write_text("class A:\n    def __init__(self):\n        self._state = 1\n\n_helper = 2\n")
    (pkg / "b.py").write_text("from hipaug.a import A, _helper\n\ndef f(a: A):\n    return a._state + _helper\n")
    assert private_uses(pkg) == ["hipaug/b.py:1 imports hipaug.a._helper", "hipaug/b.py:4 uses a._state of another module"]


def test_readme_module_table_names_the_packages_subpackages():
    """README's table of the library lists exactly the subpackages (and top-level modules) hipaug has."""
    import re

    row = next(line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| `hipaug/` |"))
    listed = set(re.findall(r"`(\w+)`", row.split("|")[2]))
    have = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    have |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__" and not p.stem.startswith("_")}
    assert listed == have, f"README lists {sorted(listed - have)} that do not exist and misses {sorted(have - listed)}"


def test_docs_name_modules_that_exist():
    """Every `hipaug.x.y` that README, CONTRIBUTING, the book's pages and the docstrings name can be found."""
    import importlib
    import re

    texts = {p: p.read_text(encoding="utf-8") for p in [ROOT / "README.md", ROOT / "CONTRIBUTING.md",
                                                          *sorted((ROOT / "book").glob("*.md")), ROOT / "book" / "claims.yml",
                                                          *sorted(PACKAGE.rglob("*.py"))]}
    # a dotted hipaug name, not a file (hipaug.css) nor a format tag (hipaug.vgg16/1)
    NAME = r"\bhipaug(?:\.[a-z_][a-z0-9_]*)+(?![\w/])(?<!\.css)(?<!\.js)"

    def resolves(name: str) -> bool:
        obj = importlib.import_module("hipaug")
        parts = name.split(".")
        for i, part in enumerate(parts[1:], 2):
            if hasattr(obj, part):
                obj = getattr(obj, part)
                continue
            try:  # a submodule not imported by its package
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                return False
        return True

    missing = {f"{p.relative_to(ROOT)}: {name}" for p, text in texts.items()
               for name in set(re.findall(NAME, text)) if not resolves(name)}
    assert not missing, sorted(missing)
