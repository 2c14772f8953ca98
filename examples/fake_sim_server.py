#!/usr/bin/env python3
"""The former name of examples/fake_simulation_server.py, kept for scripts and tests that
use it: same options, same endpoints (--load, --load-file, --mode, POST /set?load=&mode=,
and the newer --wave, --script, --every, --loop, --delay-ms). See that file.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_simulation_server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
