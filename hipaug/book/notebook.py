"""What every chapter notebook does first: check its parameters and open the pipeline."""

from __future__ import annotations

import logging
import os
import warnings

import pandas as pd

from hipaug.errors import ConfigError
from hipaug.pipeline import Pipeline


def check_parameters(profile, seed, device, executor=None, **paths) -> int | None:
    """Refuse a parameter of the wrong type in one line naming it; return the seed as an int (or None).

    papermill passes `-p` values as it parses them (`-p limb_dir 3` is the int 3), so the types
    are checked here rather than deep inside the first step that uses them.
    """
    def bad(name: str, value, want: str) -> ConfigError:
        return ConfigError(f"parameter {name}={value!r} must be {want}, got {type(value).__name__}")

    if not isinstance(profile, (str, os.PathLike)) or not str(profile).strip():
        raise bad("profile", profile, "a profile name or the path of a .yaml profile (str)")
    for name, value in paths.items():
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise bad(name, value, "a folder path (str) or None")
    if device is not None:
        if not isinstance(device, str):
            raise bad("device", device, "auto, cpu, cuda or None (str)")
        from hipaug.core import resolve_device

        resolve_device(device)  # an unknown device or CUDA without a GPU fails here, not mid-training
    if executor is not None:
        from hipaug.pipeline.executors import EXECUTOR_SPECS, executor_kwargs

        if not isinstance(executor, str):
            raise bad("executor", executor, f"{EXECUTOR_SPECS} (str)")
        try:
            executor_kwargs(executor)
        except ConfigError:
            raise ConfigError(f"parameter executor={executor!r} must be {EXECUTOR_SPECS}") from None
    if seed is None or (isinstance(seed, int) and not isinstance(seed, bool)):
        return seed
    if isinstance(seed, str) and seed.strip().lstrip("-").isdigit():
        return int(seed)  # `papermill -r seed 3` passes the string "3"
    raise bad("seed", seed, "an integer or None")


def setup(profile: str = "default", seed: int | None = None, limb_dir: str | None = None,
          pelvic_dir: str | None = None, device: str | None = None, artifacts: str | None = None,
          results: str | None = None, progress: bool = False, executor: str | None = None) -> Pipeline:
    """Validate the parameters cell and return the cached pipeline for them.

    A wrong parameter (a number for a folder, an unknown profile, a folder that does not exist,
    a bad device) raises a one-line HipaugError naming it here, in the cell right after the
    parameters.
    """
    from hipaug.config import load_profile

    seed = check_parameters(profile, seed, device, executor, limb_dir=limb_dir, pelvic_dir=pelvic_dir,
                            artifacts=artifacts, results=results)
    try:
        load_profile(profile)
    except ConfigError as exc:
        raise ConfigError(f"parameter profile={str(profile)!r}: {exc}") from None
    if not progress:
        os.environ["HIPAUG_PROGRESS"] = "0"
    logging.getLogger("hipaug").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    pd.set_option("display.precision", 3)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 160)
    from hipaug.book.chapter import show_tables_by_the_rule

    show_tables_by_the_rule()  # every table's numbers written by one rule (hipaug.core.numbers)
    from hipaug.book.plots import style

    style()
    return Pipeline(profile, limb_dir=limb_dir, pelvic_dir=pelvic_dir, artifacts=artifacts, results=results,
                    device=device, seed=seed, executor=executor)


def card_markdown(pipe: Pipeline, ds, which: str):
    """The dataset card as Markdown, naming a phantom set by its artifact rather than a local path."""
    import dataclasses

    from IPython.display import Markdown

    from hipaug.data import dataset_card

    card = dataset_card(ds)
    user_dir = pipe.limb_dir if which == "limb" else pipe.pelvic_dir
    if user_dir is None and ds.root is not None:
        card = dataclasses.replace(card, root=f"phantom ({ds.root.parent.parent.name}/{ds.root.parent.name} in the artifact cache)")
    return Markdown(card.to_markdown())


def data_summary(pipe: Pipeline):
    """The values the chapter ran with, data included, as Markdown (a chapter's `remove-input` cell after setup).

    The book hides the parameters cells (`hipaug.book.chapter`), so this table is the only place a
    page states them.
    """
    from IPython.display import Markdown

    from hipaug.book.chapter import ran_with

    return Markdown(ran_with(pipe))


def run_label(pipe: Pipeline) -> str:
    """Markdown naming the profile and the data a figure was drawn from: the closing words of its caption."""
    if pipe.source == "phantom":
        data = "built-in phantom radiographs"
    elif pipe.source.startswith("fracatlas-"):
        data = (f"FracAtlas radiographs, CC BY 4.0 (limb `{pipe.limb.fingerprint[:12]}`, hip "
                f"`{pipe.pelvic.fingerprint[:12]}`)")
    else:
        data = (f"your radiographs (limb `{pipe.limb.fingerprint[:12]}`, pelvic "
                f"`{pipe.pelvic.fingerprint[:12]}`)")
    return f"profile `{pipe.profile.name}`, {data}"


def show_figure(fig, name: str, pipe: Pipeline, **parts) -> None:
    """Hand a chapter's figure to the page: glue it as `name`, the run as `name-run`, each part as `name-<key>`.

    The page's markdown cell places it with a `{glue:figure}` directive (number, caption, alt text)
    whose caption pastes the parts with `{glue:text}` and the run with `{glue:md}`, so no number in
    a caption is typed. The figure stays the cell's output, so the downloaded notebook shows it;
    the cell is tagged `remove-output` so the page shows it once, as the numbered figure.
    """
    import matplotlib.pyplot as plt
    from IPython.display import Markdown
    from myst_nb import glue

    glue(name, fig, display=True)
    plt.close(fig)  # else the inline backend draws it a second time at the end of the cell
    glue(f"{name}-run", Markdown(run_label(pipe)), display=False)
    for key, value in parts.items():
        glue(f"{name}-{key}", value, display=False)
