"""`python -m together_simulator`."""

import sys

from together_simulator.cli import main

sys.exit(main())
