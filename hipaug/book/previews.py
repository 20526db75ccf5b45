"""Sphinx extension: hover previews (sphinx-tippy) as complete on a rebuild of the book as on its first build.

sphinx-tippy gathers every page's preview targets while the pages are written and keeps them in
memory only; an incremental build writes only the pages that changed, so their previews of the
pages that did not (the bibliography, the findings) would be lost. This extension has Sphinx
write every page on every build; reading stays incremental. `_config.yml` lists it after
`sphinx_tippy`.
"""

from __future__ import annotations


def every_page(app, env) -> list[str]:
    """Sphinx's `env-get-updated` hook: report every page as updated, so each is written again."""
    return sorted(env.found_docs)


def setup(app) -> dict:
    """Register the hook (Sphinx calls this for an entry of `extensions`)."""
    app.connect("env-get-updated", every_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
