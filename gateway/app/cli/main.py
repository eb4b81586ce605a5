"""The ``gateway`` command line (SPEC §10): serve, init and administration.

Errors are one clear line on stderr (more lines only for several config problems)
and a non-zero exit status; ``list``/``show`` accept ``--json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from gateway.app.cli import admin, admins, backup, domains, jobs, keys, mediators, queue, quota, serve
from gateway.app.cli.common import UserError
from gateway.operations.common import OpError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as one line on stderr with exit status 1."""


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="configuration file (default: $GATEWAY_CONFIG, else HOME/gateway.toml)")
    common.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS,
                        help="state folder (default: $GATEWAY_HOME, else ./var)")
    return common


Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="gateway", parents=[common],
        description="Secure health messaging gateway: patient mailboxes derived from the INS, "
                    "trust-space SMTP and IMAP for professionals, encrypted store.",
        epilog="Run 'gateway COMMAND --help' for the options of each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def leaf(group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str,
             handler: Handler) -> argparse.ArgumentParser:
        p = group.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    def node(name: str, help_: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        return p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)

    serve.register(sub, leaf)
    admin.register_init(sub, leaf)
    domains.register(node, leaf)
    admin.register(node, leaf)
    keys.register(node, leaf)
    backup.register(sub, leaf)
    jobs.register(node, leaf)
    admins.register(node, leaf)
    mediators.register(node, leaf)
    queue.register(node, leaf)
    quota.register(node, leaf)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into head & co.
        return EXIT_OK
    except UserError as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OpError as exc:  # a shared admin operation refused (gateway/operations/)
        print(f"gateway: error: {exc.english}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
