"""``python -m gateway`` is the same as the ``gateway`` command."""

import sys

from gateway.app.cli.main import main

sys.exit(main())
