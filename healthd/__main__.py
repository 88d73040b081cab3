from __future__ import annotations

import sys

from healthd.cli import main

sys.exit(main())
