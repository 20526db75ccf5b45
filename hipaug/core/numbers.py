"""How the book writes a measured number: one rounding rule for its tables and sentences.

- a fold metric (accuracy, sensitivity, specificity, F1, precision, AUC; MCC alike) is a
  percentage with 1 decimal: 0.8846 -> "88.5"; a difference of proportions, its confidence
  interval and a minimum detectable difference are percentage points with 1 decimal: "+0.8";
- a p value has 3 significant digits: "0.0312", "0.512", "1.23e-05";
- any other measured number (a loss, a distance, a time) has 3 significant digits; down a table
  column every value gets the same decimals, the most any of them needs, but at most 3 (a
  value below 0.1 keeps fewer digits), so the decimal points align;
- a count is an integer; a missing value is "n/a"; a number quoted from the paper keeps its digits.

Settings are written as in their profile (`hipaug.book.prose`), and the paper's numbers as the
paper prints them (`hipaug.paper`): neither is a measurement of this project.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from numbers import Integral, Real

import pandas as pd

PERCENT_DECIMALS = 1  # decimals of a percentage or of percentage points
SIGNIFICANT = 3  # significant digits of a p value or of any other measured number
MAX_DECIMALS = 3  # decimals a table column of other numbers never exceeds (its values below 0.1 lose digits)
MISSING = "n/a"  # a missing or undefined value (NaN, None)
KINDS = ("proportion", "points", "p", "number", "count", "quoted")  # what `format_column` knows how to write


def _missing(x) -> bool:
    return x is None or (isinstance(x, Real) and not isinstance(x, Integral) and not math.isfinite(x))


def percent(x, decimals: int = PERCENT_DECIMALS) -> str:
    """A proportion in [0, 1] as a percentage, without the % sign: 0.8846 -> "88.5"."""
    return MISSING if _missing(x) else f"{float(x) * 100:.{decimals}f}"


def points(x, signed: bool = False, decimals: int = PERCENT_DECIMALS) -> str:
    """A value already in percentage points (a difference × 100): 0.76 -> "0.8", or "+0.8" when `signed`."""
    return MISSING if _missing(x) else f"{float(x):{'+' if signed else ''}.{decimals}f}"


def pvalue(p) -> str:
    """A p value with 3 significant digits (no padding zeros): 0.03124 -> "0.0312", 0.5 -> "0.5"."""
    return MISSING if _missing(p) else f"{float(p):.{SIGNIFICANT}g}"


def decimals_for(x) -> int:
    """Decimals that give `x` 3 significant digits (0 for 0 and for abs(x) >= 100)."""
    if _missing(x) or float(x) == 0:
        return 0
    return max(0, SIGNIFICANT - 1 - math.floor(math.log10(abs(float(x)))))


def number(x, decimals: int | None = None) -> str:
    """Any other measured number with 3 significant digits (or `decimals` fixed): 0.69315 -> "0.693"."""
    if _missing(x):
        return MISSING
    if isinstance(x, Integral) or isinstance(x, bool):
        return str(x)
    if decimals is None and 0 < abs(float(x)) < 1e-3:
        return f"{float(x):.{SIGNIFICANT - 1}e}"  # 0.0000123 -> 1.23e-05, not 0.0000123
    return f"{float(x):.{decimals_for(x) if decimals is None else decimals}f}"


def quoted(x) -> str:
    """A number quoted from the paper, with no more digits than it has there: 0.76 -> "0.76"."""
    return MISSING if _missing(x) else f"{float(x):g}"


def mean_sd(mean, sd, scale: float = 100, decimals: int = PERCENT_DECIMALS) -> str:
    """A mean ± SD of a proportion as percentages (scale=100): "88.5 ± 0.8"."""
    def one(v) -> str:
        return MISSING if _missing(v) else f"{float(v) * scale:.{decimals}f}"

    return f"{one(mean)} ± {one(sd)}"


def rounded(table: pd.DataFrame, decimals: int) -> pd.DataFrame:
    """Round a table's float columns to `decimals` for display; p values keep SIGNIFICANT digits instead.

    Rounded to three decimals, a p value of 0.00015 reads 0; the book's rule then prints it as 1.54e-04.
    """
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].map(lambda v: float(f"{v:.{SIGNIFICANT}g}")) if is_p_column(str(col)) \
                else out[col].round(decimals)
    return out


def is_p_column(name: str) -> bool:
    """Whether a column's name says it holds p values ("p", "p_corrected", "p, paired t-test", "p value")."""
    n = str(name).strip().lower()
    return n == "p" or n.startswith(("p_", "p ", "p,", "p-", "p=")) or n.endswith((" p", "_p", "p-value", "p value"))


def infer_kind(name, values: pd.Series, proportions: Iterable[str] = ()) -> str | None:
    """The kind of a table column from its name and values; None for text (left as it is)."""
    vals = values.dropna()
    vals = vals[[not isinstance(v, str) for v in vals]]
    if vals.empty or not all(isinstance(v, Real) and not isinstance(v, bool) for v in vals):
        return None
    label = str(name[0] if isinstance(name, tuple) else name)
    stat = str(name[-1]) if isinstance(name, tuple) else ""
    if stat == "n" or all(float(v).is_integer() for v in vals) and pd.api.types.is_integer_dtype(values):
        return "count"
    if is_p_column(label):
        return "p"
    if "paper" in label.lower():
        return "quoted"  # the paper's numbers (Table VIII and its differences), as it prints them
    if "(points)" in label or " CI" in label:
        return "points"
    if label in set(proportions):
        return "proportion"
    return "number"


def format_column(values: pd.Series, kind: str | None) -> pd.Series:
    """Write one column by the rule of its `kind` (one of `KINDS`; None leaves it as it is)."""
    if kind is None:
        return values
    if kind not in KINDS:
        raise ValueError(f"unknown number kind {kind!r}; one of {KINDS}")
    nums = [v for v in values if isinstance(v, Real) and not isinstance(v, bool) and not _missing(v)]
    tiny = bool(nums) and max(abs(float(v)) for v in nums) < 1e-3  # such a column keeps 3 digits per value
    decimals = min(MAX_DECIMALS, max((decimals_for(v) for v in nums), default=0))
    one = {"proportion": percent, "points": points, "p": pvalue, "count": lambda v: str(int(v)), "quoted": quoted,
           "number": (lambda v: number(v)) if tiny else (lambda v: number(v, decimals))}[kind]

    def write(v):
        return v if isinstance(v, str) or isinstance(v, bool) else one(v)

    return values.map(write).astype(object)


def format_frame(df: pd.DataFrame, kinds: Mapping | None = None, proportions: Iterable[str] = ()) -> pd.DataFrame:
    """A copy of `df` with every numeric column written as text by its kind (given in `kinds` or inferred).

    Column kinds not given are inferred by `infer_kind`: names in `proportions` (the fold metrics)
    are proportions, p-value and points columns are recognised by their names, integer columns are
    counts, and any other number gets 3 significant digits.
    """
    kinds = dict(kinds or {})
    proportions = tuple(proportions)
    out = df.copy()
    for i, col in enumerate(df.columns):
        kind = kinds.get(col, infer_kind(col, df.iloc[:, i], proportions))
        out.isetitem(i, format_column(df.iloc[:, i], kind))
    return out
