"""The claims ledger: every highlight of the reader's note on the paper gets a verdict measured by the book.

`ledger` reads and validates `book/claims.yml` and matches it to the note; `preconditions`
checks that a run can decide anything (the models learned, the realism filter worked);
`evaluate` runs each claim's statistical tests on a results store and aggregates the verdicts;
`render` writes the verdict badges on the annotated paper and the findings page; `report`
prints the verdicts for `hipaug claims`.
"""

from hipaug.book.claims.evaluate import (  # noqa: F401
    FISHER_STATISTIC,
    MARGIN_STATISTIC,
    PAIRED_STATISTIC,
    PAPER_STATISTIC,
    VERDICTS,
    ClaimResult,
    MetricResult,
    aggregate,
    evaluate,
    load_results,
    results_store,
)
from hipaug.book.claims.ledger import (  # noqa: F401
    Check,
    Claim,
    Ledger,
    Preconditions,
    check_against_note,
    default_ledger,
    load_ledger,
    resolve,
)
from hipaug.book.claims.preconditions import (  # noqa: F401
    PreconditionResult,
    check_filter,
    check_learned,
    needed_preconditions,
    not_learned,
)
from hipaug.book.claims.render import (  # noqa: F401
    badge,
    chapter_titles,
    label,
    premise_front,
    render_findings_and_annotations,
)
from hipaug.book.claims.report import claims_report  # noqa: F401
