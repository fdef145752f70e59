"""``replay backends``"""

from __future__ import annotations

import json

import click

from trainio.replay.cli import main
from trainio.replay.projection.backends_table import backend_rows
from trainio.replay.projection.render import backends_table


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the profiles' numbers as JSON.")
def backends(as_json: bool) -> None:
    """List the built-in storage profiles, their key numbers and where the numbers come from.

    Use one with `replay what-if --backend NAME`; write your own (same keys) and pass it with
    `--profile FILE`. `as-captured` is not listed: it is fitted from each trace.
    """
    rows = backend_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=lambda v: None))
    else:
        click.echo(backends_table(rows))
