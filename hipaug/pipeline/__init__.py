"""The whole pipeline of Lin & Chung (2019) as one table of steps, built on demand or on a cluster.

- `step`: a `Step` (inputs, the spec that keys its artifact, build, load, cost) and a `Node`;
- `steps`: the experiment's steps (phantoms, AC-GAN, samples, realism filter, pre-training, fine-tuning);
- `results`: the results the book reads, each a step whose files go into the results store;
- `table`: the table itself, a run's targets and the closure of nodes they need;
- `run`: one run's profile, data, seeds and stores; it builds any node (`Run.artifact`);
- `plan`: the dry run (probe, critical path, predicted wall time) and the task graph executors take;
- `executors` and `distributed`: who builds the nodes (this process, or Dask);
- `cost`: FLOPs of each step, counted on the meta device;
- `facade`: `Pipeline`, what the chapters, the command line and the book call.

Every step goes through the artifact cache (`hipaug.core.artifacts.load_or_run`), keyed by its
configuration, the fingerprints of its inputs, its seed and the hipaug version: a notebook run
alone under papermill recomputes only what no earlier chapter has computed with the same inputs.
Results are written to `<results>/<profile>/<source>/`, where `source` is `phantom` or
`custom-<fingerprint>` for a user's folders, the same files however they were built.
"""

from hipaug.pipeline.facade import Pipeline  # noqa: F401
from hipaug.pipeline.run import Run, default_results_root  # noqa: F401
from hipaug.pipeline.step import Node, Step  # noqa: F401
