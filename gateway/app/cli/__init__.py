"""The ``gateway`` command: one module per group of subcommands (``main`` builds the parser
and reports errors as one line). Each command opens the services
(:func:`gateway.app.cli.common.services`) and calls the concepts below: the shared admin
operations (``gateway.operations``) wherever the console does the same thing.

Part of the composition root (``gateway.app``): may import any package of ``gateway``.
"""
