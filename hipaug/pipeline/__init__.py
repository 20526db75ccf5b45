"""The whole pipeline of Lin & Chung (2019), one cached step at a time.

`Pipeline` is what the notebooks walk through (one step per chapter) and what
`hipaug reproduce` runs end to end. Every step goes through the artifact cache
(`hipaug.core.artifacts.load_or_run`), keyed by its configuration, the fingerprints of its
inputs, its seed and the hipaug version: a notebook run alone under papermill recomputes
only what no earlier chapter has computed with the same inputs.

The steps Table VIII needs form a task graph (`hipaug.pipeline.grid`: one task per cached step,
one per fine-tuning fold) that an executor can build in parallel first, e.g. on Dask
(`Pipeline(..., executor="dask:N")`, `hipaug reproduce --workers N`, the notebooks' and the book's
`executor` parameter); the results are read from the same artifacts either way.

Results that the book and the claims ledger read are written to a results store,
`<results>/<profile>/<source>/`, where `source` is `phantom` or `custom-<fingerprint>` for a
user's folders.
"""

from hipaug.pipeline.reports import Pipeline  # noqa: F401
from hipaug.pipeline.store import default_results_root  # noqa: F401
