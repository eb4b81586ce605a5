"""``python -m gateway`` is the same as the ``gateway`` command.

The internal ``smtp-process`` command, as ``gateway serve`` starts it (``python -m gateway
--config FILE smtp-process ...``), starts without the rest of the command line
(:func:`gateway.app.smtp_process.main`): less to import, less resident memory (issue 22).
"""

import sys


def _is_smtp_process(argv: list[str]) -> bool:
    """The first word after the ``--config``/``--home`` options is ``smtp-process``."""
    while len(argv) >= 2 and argv[0] in ("--config", "--home"):
        argv = argv[2:]
    return bool(argv) and argv[0] == "smtp-process"


if _is_smtp_process(sys.argv[1:]):
    from gateway.app.smtp_process import main
else:
    from gateway.app.cli.main import main

sys.exit(main())
