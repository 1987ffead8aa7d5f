"""`haven figures`: outcome reports and private figures from the Python client (§28)."""

from __future__ import annotations

import json
from typing import Any

import click

from vault.client.cli import _client, _credentials, api_errors
from vault.client.figures import Figures
from vault.protocol import figures as pfig


@click.group("figures")
def figures_group() -> None:
    """Outcome reports (counsel) and figures released with differential privacy (admins)."""


def _answer_options(command: Any) -> Any:
    for name, values in reversed(pfig.FIELDS.items()):
        flag = "--" + name.replace("_", "-")
        command = click.option(flag, name, required=True, type=click.Choice(values))(command)
    return command


@figures_group.command("report")
@_credentials
@click.argument("case_id")
@_answer_options
def report_command(server: str, username: str, case_id: str, **answers: str) -> None:
    """Report CASE_ID's outcomes for this period (randomized here; true answers sealed)."""
    with api_errors("could not report: "):
        made = Figures(_client(server, username)).report(case_id, answers)
    click.echo(f"Reported {made['outcome']['period']} for case {case_id}.")


@figures_group.command("releases")
@_credentials
@click.option("--period", default=None, help='A quarter, "YYYY-Qn" (default: this one).')
def releases_command(server: str, username: str, period: str | None) -> None:
    """Print a period's budget and releases as JSON."""
    with api_errors():
        found = Figures(_client(server, username)).releases(period)
    click.echo(json.dumps(found, indent=2))


@figures_group.command("release")
@_credentials
@click.argument("period")
def release_command(server: str, username: str, period: str) -> None:
    """Release PERIOD's figures (spends its privacy budget) and print them as JSON."""
    with api_errors("could not release: "):
        made = Figures(_client(server, username)).release(period)
    click.echo(json.dumps(made, indent=2))
