"""What every chapter notebook does first: check its parameters and open the pipeline."""

from __future__ import annotations

import logging
import os
import warnings

import pandas as pd

from .pipeline import Pipeline


def setup(profile: str = "default", seed: int | None = None, limb_dir: str | None = None,
          pelvic_dir: str | None = None, device: str | None = None, artifacts: str | None = None,
          results: str | None = None, progress: bool = False) -> Pipeline:
    """Validate the parameters cell and return the cached pipeline for them.

    A wrong parameter (unknown profile, a folder that does not exist, a bad device) raises a
    one-line HipaugError here, in the cell right after the parameters.
    """
    if not progress:
        os.environ["HIPAUG_PROGRESS"] = "0"
    logging.getLogger("hipaug").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    pd.set_option("display.precision", 3)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 160)
    from .plots import style

    style()
    return Pipeline(profile, limb_dir=limb_dir, pelvic_dir=pelvic_dir, artifacts=artifacts, results=results,
                    device=device, seed=seed)


def card_markdown(pipe: Pipeline, ds, which: str):
    """The dataset card as Markdown, naming a phantom set by its artifact rather than a local path."""
    import dataclasses

    from IPython.display import Markdown

    from .data import dataset_card

    card = dataset_card(ds)
    user_dir = pipe.limb_dir if which == "limb" else pipe.pelvic_dir
    if user_dir is None and ds.root is not None:
        card = dataclasses.replace(card, root=f"phantom ({ds.root.parent.parent.name}/{ds.root.parent.name} in the artifact cache)")
    return Markdown(card.to_markdown())
