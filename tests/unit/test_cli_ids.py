"""Document ids on the command line: one that begins with "-" is an argument, not an option."""

from __future__ import annotations

import click
from click.testing import CliRunner

from vault.client.cli import IdArguments

DASHED = "-Bq3xYk2Lw9v0aZtQpR_mE"  # 22 characters of base64url, as a document id is
PLAIN = "Aq3xYk2Lw9v0aZtQpR_mE1"


@click.command(cls=IdArguments)
@click.argument("case_id")
@click.argument("document_ids", nargs=-1, required=True)
@click.option("--recipient", required=True)
@click.option("--days", default=7, type=int)
@click.option("--with-passphrase", is_flag=True)
def command(
    case_id: str, document_ids: tuple[str, ...], recipient: str, days: int, with_passphrase: bool
) -> None:
    click.echo(repr((case_id, document_ids, recipient, days, with_passphrase)))


def run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(command, list(args))


def test_an_id_that_begins_with_a_dash_is_an_argument_wherever_it_stands() -> None:
    got = run("case", DASHED, "--recipient", "Shelter", "--with-passphrase", PLAIN)
    assert got.exit_code == 0, got.output
    assert got.output.strip() == repr(("case", (DASHED, PLAIN), "Shelter", 7, True))
    got = run("--days=3", "case", PLAIN, DASHED, "--recipient", "-x")
    assert got.exit_code == 0, got.output
    assert got.output.strip() == repr(("case", (PLAIN, DASHED), "-x", 3, False))


def test_a_mistyped_option_is_still_named_and_an_explicit_double_dash_is_left_alone() -> None:
    got = run("case", PLAIN, "--recipent", "Shelter")
    assert got.exit_code == 2
    assert "No such option '--recipent'" in got.output
    got = run("--recipient", "Shelter", "--", "case", DASHED)
    assert got.exit_code == 0, got.output
    assert got.output.strip() == repr(("case", (DASHED,), "Shelter", 7, False))


def test_without_the_class_the_same_words_fail_as_they_did() -> None:
    plain = click.Command("plain", params=command.params, callback=command.callback)
    got = CliRunner().invoke(plain, ["case", DASHED, "--recipient", "Shelter"])
    assert got.exit_code == 2
    assert "No such option '-B'" in got.output
