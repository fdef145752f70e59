"""What the ``tracer`` and ``replay`` command groups share: errors become one line and an exit code."""

from __future__ import annotations

import sys

import click

from trainio.tracefile.redact import Redactor

BAD_INPUT = 2
FAILURE = 1


def _shown(message: str) -> str:
    """An error message as printed: a secret it quotes (a URL's password, a token) is redacted."""
    return Redactor().text(message)


class UserError(Exception):
    """Bad input or usage that the CLI reports in one line with exit code 2."""


class OneLineErrors(click.Group):
    """A click group whose subcommands' named errors print as one line on stderr, never a traceback.

    ``bad_input`` errors exit 2 (bad input or usage); ``failures`` exit 1.
    """

    bad_input: tuple[type[BaseException], ...] = (UserError,)
    failures: tuple[type[BaseException], ...] = ()

    def main(self, *args, **kwargs):
        """Usage errors too become one line (click prints three by default)."""
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            name = exc.ctx.command_path if exc.ctx else self.name
            click.echo(f"{name}: error: {_shown(exc.format_message())} (see --help)", err=True)
            sys.exit(BAD_INPUT)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(FAILURE)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except self.bad_input as exc:
            click.echo(f"{ctx.info_name}: error: {_shown(str(exc))}", err=True)
            sys.exit(BAD_INPUT)
        except self.failures as exc:
            click.echo(f"{ctx.info_name}: failed: {_shown(str(exc))}", err=True)
            sys.exit(FAILURE)
