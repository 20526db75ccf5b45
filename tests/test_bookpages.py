"""Generated book pages: the paper's BibTeX comes from the reader's note; CLI and API pages are current."""

from __future__ import annotations

from pathlib import Path

from hipaug.book import pages as bookpages

ROOT = Path(__file__).resolve().parents[1]


def test_references_bib_entry_is_generated_from_the_note():
    """The citation shown and the reader's note can never disagree (make book refreshes the block)."""
    generated = bookpages.paper_bibtex(ROOT)
    assert bookpages.generated_bib_block(ROOT) == generated, "run `make book` to refresh book/references.bib"
    assert "@inproceedings{linMedicalDataAugmentation2019," in generated
    assert "10.1109/TAAI48200.2019.8959908" in generated and "Lin, Ying-Jia and Chung, I-Fang" in generated


def test_cli_help_page_covers_every_command():
    """Every command and subcommand of the parser has its --help on the page (the page's list is checked, not trusted)."""
    import argparse

    from hipaug.cli import _parser

    def commands(p: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return [prefix]
        return [c for a in subs for name, sp in a.choices.items() for c in commands(sp, (*prefix, name))]

    text = bookpages.cli_help()
    for cmd in commands(_parser()):
        assert f"## `hipaug {' '.join(cmd)}`" in text, cmd


def test_api_reference_documents_every_module_with_autodoc():
    """The API page is Sphinx autodoc over the package itself: a new module appears without a hand list."""
    import pkgutil

    import hipaug

    text = bookpages.api_reference()
    modules = [m.name for m in pkgutil.walk_packages(hipaug.__path__, "hipaug.") if not m.name.endswith("__main__")]
    assert len(modules) > 30
    for name in modules:
        assert f".. automodule:: {name}\n" in text, name


def test_contributing_layout_is_generated_from_the_contracts():
    """CONTRIBUTING.md's diagram is the one the import contracts and docstrings give (`make layout`)."""
    from hipaug.book import layout

    assert layout.current_block(ROOT / "CONTRIBUTING.md") == layout.block(ROOT), "run `make layout`"
    text = layout.diagram(ROOT)
    for pkg in ("hipaug.cli", "hipaug.book", "hipaug.pipeline", "hipaug.models", "hipaug.data", "hipaug.core"):
        assert pkg in text, pkg


def test_profiles_table_shows_every_profile():
    table = bookpages.profiles_table()
    assert all(p in table.splitlines()[0] for p in ("default", "paper", "smoke"))
    assert "acgan.steps" in table and "arch.width" in table
