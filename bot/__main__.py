"""``python -m bot``: the same as the ``rehearse`` command."""

import sys

from bot.cli import main

sys.exit(main())
