import sys

from hipaug.cli import main

sys.exit(main())
