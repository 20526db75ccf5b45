"""The book side: literature import, claims ledger, prose, plots, generated pages, the build."""
