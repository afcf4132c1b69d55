"""``python -m warrenmq.cli``: the same as ``warrenctl``."""

import sys

from warrenmq.cli.main import main

sys.exit(main())
