"""The ``fewshot`` command line: one module per command group.

Every error a user can cause ends in one line on stderr saying what is wrong
and how to fix it, exit status 2, and nothing written.
"""

from __future__ import annotations

import sys

import click

from fewshot.cli import board, catalog, data, evaluate, runs, study, sweep  # noqa: F401  (each registers its commands)
from fewshot.cli.app import cli
from fewshot.core.errors import FewshotError, Interrupted

__all__ = ["cli", "main"]


def one_line(text: object) -> str:
    """A message as one line: a newline or other control character (from a value the user gave, quoted in it)
    is shown escaped, as Python writes it, so an error stays the one line a script reads."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))


def main(argv: list[str] | None = None) -> None:
    from fewshot.run.runtime import tune_allocator

    tune_allocator()
    words = sys.argv[1:] if argv is None else argv
    nul = next((i for i, word in enumerate(words) if "\0" in word), None)
    if nul is not None:  # no shell passes one; a caller from Python can, and no path or name may hold it
        click.echo(f"error: argument '{one_line(words[nul])}' holds a NUL character: remove it", err=True)
        sys.exit(2)
    try:
        code = cli.main(args=argv, prog_name="fewshot", standalone_mode=False)
    except Interrupted as err:
        click.echo(one_line(err), err=True)
        sys.exit(130)
    except FewshotError as err:
        click.echo(f"error: {one_line(err)}", err=True)
        sys.exit(2)
    except click.exceptions.UsageError as err:
        command = err.ctx.command_path if err.ctx is not None else "fewshot"
        click.echo(f"error: {one_line(err.format_message())} (see `{command} --help`)", err=True)
        sys.exit(2)
    except click.exceptions.ClickException as err:
        click.echo(f"error: {one_line(err.format_message())}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
