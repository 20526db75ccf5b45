"""What Lin & Chung (2019) reported, quoted (not measured) for side-by-side display.

Source: the paper's Table VIII (five-fold cross-validation, mean +- SD, percent), as
quoted by the book's annotated paper (citekey linMedicalDataAugmentation2019,
DOI 10.1109/TAAI48200.2019.8959908). The paper reports no AUC. These numbers are the
paper's; everything hipaug shows beside them is computed by the pipeline.
"""

from __future__ import annotations

import pandas as pd

# condition -> metric -> (mean %, SD %), quoted from Table VIII.
TABLE8 = {
    "without_gan": {"accuracy": (88.46, 0.8), "sensitivity": (92.68, 2.0), "specificity": (83.40, 2.1), "f1": (89.75, 0.7)},
    "with_gan": {"accuracy": (89.22, 0.7), "sensitivity": (91.02, 0.7), "specificity": (87.06, 2.1), "f1": (90.21, 0.5)},
}
# Table VIII's mean and SD are over the folds of a five-fold cross-validation.
TABLE8_FOLDS = 5
# metric -> did the paper's paired t-test (with vs without GAN) find a significant difference?
TABLE8_SIGNIFICANT = {"accuracy": True, "sensitivity": False, "specificity": True, "f1": True}


def paper_table8() -> pd.DataFrame:
    """The paper's Table VIII as a long DataFrame (condition, metric, mean, sd, significant)."""
    rows = [{"condition": c, "metric": m, "mean": mean, "sd": sd, "significant": TABLE8_SIGNIFICANT[m]}
            for c, metrics in TABLE8.items() for m, (mean, sd) in metrics.items()]
    return pd.DataFrame(rows)


def paper_difference(metric: str, a: str = "with_gan", b: str = "without_gan") -> float | None:
    """Table VIII's `a` minus `b` mean of `metric` in points (None when the paper has no such pair)."""
    if {a, b} != set(TABLE8) or metric not in TABLE8[a]:
        return None
    return round(TABLE8[a][metric][0] - TABLE8[b][metric][0], 10)
