"""The package layout as a diagram: layers from the import contracts, modules and their one-line purpose.

CONTRIBUTING.md and the API page show it; `make layout` refreshes CONTRIBUTING.md's copy and a test
fails when it is stale, so the picture cannot drift from the code or from `pyproject.toml`.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

BEGIN = "<!-- BEGIN generated layout (make layout) -->"
END = "<!-- END generated layout -->"


def layers(root: Path) -> list[list[str]]:
    """The layers contract of `root`/pyproject.toml, top first; each layer lists its sibling packages."""
    conf = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in conf["tool"]["importlinter"]["contracts"] if c.get("type") == "layers")
    return [[m.strip() for m in layer.replace(":", "|").split("|")] for layer in contract["layers"]]


def _summary(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().split("\n")[0].rstrip(".")


def _modules(package_dir: Path, dotted: str) -> list[tuple[str, Path]]:
    """(dotted name, file) of a package or module, packages expanded to their modules."""
    rel = package_dir.joinpath(*dotted.split(".")[1:])
    if rel.with_suffix(".py").is_file():
        return [(dotted, rel.with_suffix(".py"))]
    out = [(dotted, rel / "__init__.py")]
    for p in sorted(rel.rglob("*.py")):
        if p.name in ("__init__.py", "__main__.py") and p.parent == rel:
            continue
        name = ".".join((dotted, *p.relative_to(rel).with_suffix("").parts)).removesuffix(".__init__")
        out.append((name, p))
    return out


def diagram(root: Path, counts: bool = False) -> str:
    """A text diagram of the layers, top (imports everything below) to bottom (imports nothing of hipaug)."""
    pkg = root / "hipaug"
    lines = []
    for i, layer in enumerate(layers(root)):
        if i:
            lines.append("        │ imports only downwards")
            lines.append("        ▼")
        lines.append("  " + "  |  ".join(layer) + ("   (independent siblings)" if len(layer) > 1 else ""))
        for top in layer:
            for name, path in _modules(pkg, top):
                if name == top and path.name == "__init__.py":
                    continue
                n = f" {len(path.read_text(encoding='utf-8').splitlines()):>4} lines" if counts else ""
                lines.append(f"      {name:<34}{n}  {_summary(path)}")
    lines += ["", "  hipaug.errors, hipaug.paper: leaves any layer may import (exceptions; the paper's numbers)"]
    return "\n".join(lines)


def block(root: Path) -> str:
    """The fenced diagram as CONTRIBUTING.md holds it."""
    return f"{BEGIN}\n```text\n{diagram(root)}\n```\n{END}"


def current_block(path: Path) -> str:
    """The diagram block currently in `path` (empty if it has none)."""
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        return ""
    return text[text.index(BEGIN):text.index(END) + len(END)]


def refresh(root: Path, doc: str = "CONTRIBUTING.md") -> bool:
    """Replace the diagram block of `root/doc`; return True if it changed."""
    from hipaug.core import atomic_write_text

    path = root / doc
    old = current_block(path)
    if not old:
        raise ValueError(f"{path}: no {BEGIN} ... {END} block to refresh")
    new = block(root)
    if new == old:
        return False
    atomic_write_text(path, path.read_text(encoding="utf-8").replace(old, new))
    return True
