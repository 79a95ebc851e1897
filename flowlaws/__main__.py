"""``python -m flowlaws``."""

import sys

from flowlaws.cli import main

sys.exit(main())
