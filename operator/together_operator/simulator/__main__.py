"""`python -m together_operator.simulator`."""

import sys

from together_operator.simulator.cli import main

sys.exit(main())
