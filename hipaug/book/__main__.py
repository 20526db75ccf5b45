"""`python -m hipaug.book`: build the Jupyter Book (see hipaug.book.build)."""

import sys

from hipaug.book.build import main

sys.exit(main())
