"""The `vergeet` command line.

Runs the pipeline directly (no Prefect server needed). Exit codes: 0 success,
1 a run finished with failed actions, 2 bad input or configuration.
"""
from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from rich.console import Console
from typer.core import TyperGroup
from rich.table import Table

from vergeet.config import Config, load_config
from vergeet.errors import BadInput
from vergeet.rules import Rules, load_rules

GLOBAL_OPTIONS = {"--config": "--config", "-c": "--config", "--lang": "--lang"}


class GlobalOptionsGroup(TyperGroup):
    """The top command, whose options `--config` and `--lang` may stand before or after the subcommand.

    Click reads a group's options before its subcommand only, so `parse_args` first moves them: `--config`
    anywhere goes before the subcommand, and `--lang` goes to the command that has a `--lang` of its own (a
    document's language for `find`, `erase` and `correct`); for one without, it stays the top command's, the
    language of what it prints. Nothing after `--` is moved.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._hoisted(ctx, list(args)))

    def _hoisted(self, ctx: click.Context, args: list[str]) -> list[str]:
        found: dict[str, str] = {}  # option -> its value (the last one given, as click takes it)
        rest: list[str] = []
        tokens = iter(args)
        for token in tokens:
            if token == "--":
                rest += [token, *tokens]
                break
            name, equals, value = token.partition("=")
            if name in GLOBAL_OPTIONS and (not equals or name.startswith("--")):
                if not equals:
                    value = next(tokens, None)
                    if value is None:
                        rest.append(token)  # click says the value is missing
                        break
                found[GLOBAL_OPTIONS[name]] = value
            else:
                rest.append(token)
        command, at = _leaf(self, ctx, rest)
        front = ["--config", found["--config"]] if "--config" in found else []
        lang = ["--lang", found["--lang"]] if "--lang" in found else []
        if command is not None and any(p.name == "lang" for p in command.params):
            rest[at:at] = lang
        else:
            front += lang
        return front + rest


def _leaf(group: TyperGroup, ctx: click.Context, args: list[str]) -> tuple[click.Command | None, int]:
    """The command `args` name through the groups (None if it names none), and where its own arguments begin."""
    command: click.Command | None = group
    for at, token in enumerate(args):
        if token.startswith("-"):
            continue
        command = command.get_command(ctx, token) if isinstance(command, TyperGroup) else None
        if not isinstance(command, TyperGroup):
            return command, at + 1
    return None, len(args)


app = typer.Typer(cls=GlobalOptionsGroup, no_args_is_help=True, add_completion=False,
                  help="Keep a privacy statement's retention promises across the SaaS tools a business uses.")
rules_app = typer.Typer(no_args_is_help=True, help="Check and show the retention rules.")
requests_app = typer.Typer(no_args_is_help=True, help="Data subject requests and their deadlines.")
app.add_typer(rules_app, name="rules")
hold_app = typer.Typer(no_args_is_help=True, help="Legal holds: keep a person's records, or one record, while a "
                                                    "dispute runs.")
app.add_typer(requests_app, name="requests")
app.add_typer(hold_app, name="hold")
tasks_app = typer.Typer(help="Tasks by hand: what you must check or ask where vergeet cannot search or erase.")
app.add_typer(tasks_app, name="tasks")

out = Console()
err = Console(stderr=True)


class State:
    """Options given before the command, shared by every command."""

    def __init__(self, config_path: str | None, lang: str | None = None):
        self.config_path = config_path
        self.lang = lang

    def language(self, config: Config | None) -> str:
        """The language to print in: `--lang`, else the config's, else the locale's."""
        from vergeet.plan_text import choose_language

        return choose_language(self.lang, config.language if config else None)

    def config(self) -> Config:
        return load_config(self.config_path)

    def rules(self, config: Config | None = None) -> Rules:
        return load_rules(config.rules_file() if config else None)


def _ledger(config: Config, *, applying: bool = False):
    """The config's ledger (`vergeet.connect.open_ledger`), saying so when this creates it: a new, empty ledger
    knows nothing of what earlier runs did."""
    from vergeet.connect import open_ledger

    path = config.ledger_file()
    new = path is not None and not path.exists()
    ledger = open_ledger(config, applying=applying)
    if new:
        from vergeet.plan_text import choose_language

        said = {"nl": "Er is een nieuw grootboek gemaakt in {path} (store.url in {source}).",
                "en": "A new ledger was created at {path} (store.url in {source})."}
        err.print(said[choose_language(None, config.language)].format(path=path, source=config.source),
                  highlight=False, soft_wrap=True)
    return ledger


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print a `BadInput` as one clear message and exit 2; nothing has run."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BadInput as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


@app.callback()
def main(ctx: typer.Context,
         config: Annotated[Optional[str], typer.Option("--config", "-c", metavar="PATH",
                                                       help="Configuration file (default: $VERGEET_CONFIG).")] = None,
         lang: Annotated[Optional[str], typer.Option(help="nl or en: what vergeet prints, and the document of find, "
                                                          "erase and correct (default: the config's language, else "
                                                          "the locale's)")] = None):
    if lang not in (None, "nl", "en"):
        raise typer.BadParameter(f"{lang!r} is not nl or en", param_hint="--lang")
    ctx.obj = State(config, lang)


# -- purge ---------------------------------------------------------------------------------


@app.command()
@guarded
def purge(ctx: typer.Context,
          apply: Annotated[bool, typer.Option("--apply", help="Carry the plan out (default: dry run).")] = False,
          as_of: Annotated[Optional[str], typer.Option("--as-of", metavar="YYYY-MM-DD",
                                                       help="Decide as on this day (default: today).")] = None,
          force: Annotated[bool, typer.Option("--force", help="Apply even when the circuit breaker trips.")] = False,
          details: Annotated[bool, typer.Option("--details/--no-details", help="List the first records of each "
                                                                               "kind of action (or only counts).")]
          = True,
          every: Annotated[bool, typer.Option("--every", help="List every record the plan acts on.")] = False,
          lang: Annotated[Optional[str], typer.Option(help="nl or en (default: the config's language, else the "
                                                           "locale's)")] = None,
          format_: Annotated[str, typer.Option("--format", help="text (for people) or json (for scripts: the plan "
                                                                "on stdout, no names)")] = "text",
          full_read: Annotated[bool, typer.Option("--full-read", help="With --apply: read every system whole now, "
                                                                      "not only what changed (a reconciliation; "
                                                                      "a dry run always reads in full).")] = False,
          accept_rules: Annotated[bool, typer.Option("--accept-rules", help="With --apply: accept the retention "
                                                                            "rules as changed since the last "
                                                                            "applied run (shown first).")] = False):
    """The nightly purge: find what outlived its retention period, show it, and with --apply delete it."""
    from vergeet.connect import require_lasting_ledger

    day = parse_day(as_of, "--as-of") if as_of else date.today()
    if apply and day > date.today():
        raise BadInput(f"--as-of: {day} is after today; applying as on a future day would delete what is not due "
                       "yet (a dry run may look ahead)")
    if day != date.today():
        out.print(f"Deciding as on {day}, not today ({date.today()}).", highlight=False)
    if accept_rules and not apply:
        raise BadInput("--accept-rules: goes with --apply (a dry run shows how the rules changed and accepts nothing)")
    config = ctx.obj.config()
    if apply:
        require_lasting_ledger(config)
    if lang not in (None, "nl", "en"):
        raise BadInput(f"--lang: {lang!r} is not nl or en")
    if format_ not in ("text", "json"):
        raise BadInput(f"--format: {format_!r} is not text or json")
    raise typer.Exit(run_purge(config, ctx.obj.rules(config), apply=apply, day=day, force=force,
                               show=None if every else (3 if details else 0), full_read=full_read,
                               accept_rules=accept_rules, lang=lang, as_json=format_ == "json"))


def run_purge(config: Config, rules: Rules, *, apply: bool, day: date, force: bool = False,
              show: int | None = 3, full_read: bool = False, accept_rules: bool = False, lang: str | None = None,
              as_json: bool = False) -> int:
    """One purge from the command line; returns the exit code (0 done, 1 refused or failed actions).

    `show` limits how many records of each kind of action are listed (None: all, 0: none). A dry run reads every
    system in full, in memory only, so its plan can name the records (numbers, dates, masked identifiers);
    `--apply` reads incrementally through the ledger's cache (in full when a reconciliation is due or
    `full_read`), as the nightly flow does. `as_json`: the plan goes to stdout as JSON, everything else to stderr.
    """
    from contextlib import ExitStack

    from vergeet import pipeline
    from vergeet.connect import build_connectors
    from vergeet.ledger import LeaseHeld, LeaseLost
    from vergeet.plan_text import RecordNamer, breaker_refusal, choose_language, next_scheduled_night, notices, \
        outcome_text, plan_json, plan_text

    lang = choose_language(lang, config.language)
    screen = err if as_json else out
    connectors = build_connectors(config)

    def outcome(run_id: int) -> None:
        folders = [Path(config.source).parent] if config.source else []
        screen.print(outcome_text(run_id, ledger.actions(run_id), rules, lang,
                                  next_scheduled_night(folders + [Path.cwd(), Path(__file__).parents[1]])))

    with _ledger(config) as ledger, ExitStack() as applying:
        if apply:  # one applying run per ledger; a dry run needs no lease
            try:
                applying.enter_context(ledger.lease("purge"))
            except LeaseHeld as exc:
                err.print(f"[bold red]busy:[/] {exc}; nothing was changed. Run again once it has finished.",
                          highlight=False)
                return 1
            for resumed in pipeline.resume_unfinished(ledger, connectors):
                screen.print(f"Run {resumed.run_id} was interrupted earlier; it is finished now.", highlight=False)
                outcome(resumed.run_id)
                _print_stopped(resumed)
        if not _rules_accepted(ledger, rules, apply=apply, accept=accept_rules):
            return 1
        try:
            with out.status("Reading " + ", ".join(connectors) + " ..."):
                records = (pipeline.sync_all(connectors, ledger, config.sync, full=full_read) if apply
                           else pipeline.pull_all(connectors))
        except pipeline.PullFailed as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            return 1
        view = pipeline.identity_view(records, rules)
        plan = pipeline.make_plan(view, rules, day, ledger)
        limit = config.purge.max_delete_share
        if as_json:
            typer.echo(json.dumps(plan_json(plan, rules, applying=apply, max_delete_share=limit), indent=2))
        else:
            read = {} if apply else {str(r.ref): r for found in records.values() for r in found}
            out.print(plan_text(plan, rules, lang, applying=apply, names=RecordNamer(view, read, lang), first=show,
                                max_delete_share=limit))
        for notice in notices(plan, rules, lang):
            screen.print(notice, highlight=False)
        _print_holds(plan, view, ledger, day, screen)
        if not apply:
            if len(plan.actions):
                screen.print(_dry_run_done(len(plan.actions), lang), highlight=False)
            return 0
        if plan.actions.empty:
            return 0
        if not force:
            try:
                pipeline.check_circuit_breaker(plan, config.purge.max_delete_share)
            except pipeline.CircuitOpen:
                err.print(breaker_refusal(plan, rules, lang, config.purge.max_delete_share), style="bold red",
                          highlight=False)
                return 1
        run_id = pipeline.store_plan(ledger, plan)
        try:
            summary = _with_progress(len(plan.actions), f"Run {run_id}",
                                     lambda advance: pipeline.execute(ledger, run_id, connectors, advance))
        except LeaseLost as exc:
            err.print(f"[bold red]stopped:[/] {exc}; that run finishes this one.", highlight=False)
            return 1
        outcome(summary.run_id)
    _print_stopped(summary)
    return 1 if summary.failed else 0


def _dry_run_done(actions: int, lang: str) -> str:
    if lang == "nl":
        return (f"Proefdraai: er is niets veranderd. Met --apply worden deze {actions} "
                f"{'actie' if actions == 1 else 'acties'} uitgevoerd.")
    return f"Dry run: nothing was changed. With --apply these {actions} action{'s' * (actions != 1)} are carried out."


def _rules_accepted(ledger, rules: Rules, *, apply: bool, accept: bool) -> bool:
    """Show how the rules changed since the last applied run; an applying run goes on only when `accept`, and
    then (or when nothing changed) records them as the accepted ones (`vergeet.rules.accept_rules`)."""
    from rich.syntax import Syntax

    from vergeet.rules import RulesChanged, accept_rules, rules_change

    try:
        change = accept_rules(ledger, rules, accept=accept) if apply else rules_change(ledger, rules)
    except RulesChanged as exc:
        change = exc.diff
    if not change:
        return True
    out.print("[bold yellow]The retention rules changed[/] since the last applied run:", highlight=False)
    out.print(Syntax(change, "diff", theme="ansi_dark", background_color="default"))
    if not apply:
        out.print("The next --apply needs --accept-rules to run with them.")
    elif not accept:
        err.print("[bold red]refused:[/] the retention rules changed since the last applied run (above); nothing "
                  "was changed. Review the change, then run again with --apply --accept-rules.", highlight=False)
        return False
    else:
        out.print("Accepted: from now on these are the rules a purge applies without asking.")
    return True


def _print_stopped(summary) -> None:
    """One line per system that stopped after a run of failures (`pipeline.execute`)."""
    for message in summary.stopped.values():
        err.print(f"[bold yellow]Stopped:[/] {message}.", highlight=False, soft_wrap=True)


def _print_holds(plan, view, ledger, day: date, screen: Console = out) -> None:
    """Which legal hold kept how many records (`vergeet hold list` says what each is about)."""
    from vergeet import holds

    active = ledger.active_holds(day)
    reasons = {hold["id"]: hold["reason"] for hold in active}
    for hold_id, count in holds.kept_by(plan, view, active, ledger.hash_identifier).items():
        screen.print(f"Legal hold {hold_id} ({reasons[hold_id]}) keeps {count} record{'s' * (count != 1)}.",
                  highlight=False, soft_wrap=True)


def _with_progress(total: int, title: str, work):
    """Run `work(advance)` under a progress bar of `total` steps; `work` calls `advance` once per action."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=out) as progress:
        task = progress.add_task(title, total=total)
        return work(lambda _: progress.advance(task))


# -- demo ----------------------------------------------------------------------------------


@app.command()
@guarded
def demo(people: Annotated[int, typer.Option(help="Size of the synthetic population.")] = 60,
         seed: Annotated[int, typer.Option(help="Seed of the synthetic population.")] = 7,
         workdir: Annotated[Optional[str], typer.Option(help="Keep config and ledger here "
                                                             "(default: a new temporary folder).")] = None,
         lang: Annotated[Optional[str], typer.Option(help="nl or en (default: the locale's)")] = None):
    """Run the nightly purge against the built-in sandbox of every connected system; no account needed."""
    from vergeet.demo import run_demo

    if lang not in (None, "nl", "en"):
        raise BadInput(f"--lang: {lang!r} is not nl or en")
    raise typer.Exit(run_demo(people=people, seed=seed, workdir=workdir, lang=lang))


@app.command()
@guarded
def sandbox(directory: Annotated[str, typer.Option("--dir", metavar="DIR", help="Where the config goes.")]
            = "vergeet-sandbox",
            people: Annotated[int, typer.Option(help="Size of the synthetic population.")] = 60,
            seed: Annotated[int, typer.Option(help="Seed of the synthetic population.")] = 7):
    """Serve fakes of every connected system on 127.0.0.1, with a config to try every command against, until Ctrl-C."""
    from vergeet.demo import run_sandbox

    raise typer.Exit(run_sandbox(Path(directory), people=people, seed=seed))


@app.command()
@guarded
def serve(ctx: typer.Context):
    """Run the jobs as Prefect deployments in this process (nightly purge on its schedule, access, erasure and
    rectification requests from the Prefect UI), with the config and secrets of this environment, until Ctrl-C."""
    config = ctx.obj.config()  # a bad config stops here (exit 2), not in the first run
    from flows.serve import serve as serve_flows

    serve_flows(str(Path(config.source).resolve()), say=lambda line: out.print(line, highlight=False,
                                                                               soft_wrap=True))


@app.command()
@guarded
def init(directory: Annotated[str, typer.Argument(metavar="DIR", help="Where the files go.")] = "."):
    """Start an installation: a random pepper, a starter config and the rules file to make your own."""
    from vergeet.config import CONFIG_FILE, ENV_FILE, PEPPER_MIN_LENGTH, write_starter
    from vergeet.rules import SHIPPED_RULES

    where = Path(directory)
    written = write_starter(where, SHIPPED_RULES.read_text(encoding="utf-8"))
    out.print("Written: " + ", ".join(str(p) for p in written) + f". {where / ENV_FILE} holds a new random pepper "
              f"(at least {PEPPER_MIN_LENGTH} characters are required) and is readable by you only.", highlight=False)
    out.print(f"Next:\n  1. Keep a copy of VERGEET_PEPPER from {where / ENV_FILE} in your password manager, and never "
              "change it: the ledger's hashes are keyed with it.\n"
              f"  2. Connect your systems in {where / CONFIG_FILE} and put their tokens in {where / ENV_FILE}.\n"
              f"  3. Load the secrets and look before anything is deleted:\n"
              f"     set -a; . {where / ENV_FILE}; set +a\n"
              f"     vergeet --config {where / CONFIG_FILE} rules check\n"
              f"     vergeet --config {where / CONFIG_FILE} purge\n"
              "  With Prefect, store the pepper in a Secret block instead and write pepper = "
              "\"prefect-secret:NAME\".", highlight=False, soft_wrap=True)


# -- rules ---------------------------------------------------------------------------------


@rules_app.command("check")
@guarded
def rules_check(path: Annotated[Optional[str], typer.Argument(help="Rules file (default: ./retention_rules.toml, "
                                                                   "else the shipped one).")] = None):
    """Validate a retention rules file."""
    from vergeet.rules import LEGAL_FLOOR_TEXT, fiscal_record_types

    rules = load_rules(path)
    out.print(f"{rules.source}: OK: {len(rules.rules)} rules, {len(rules.purposes)} purposes, "
              f"{len(rules.processors)} processors", highlight=False)
    fiscal = ", ".join(f"{system} {record_type}" for system, record_type in fiscal_record_types(rules))
    out.print(f"Fiscal documents, kept at least {LEGAL_FLOOR_TEXT}: {fiscal or 'none (no rule counts from document_date)'}",
              highlight=False, soft_wrap=True)
    overrides = [(f"rule {r.id}", r.below_legal_floor) for r in rules.rules if r.below_legal_floor] + [
        (f"exception {name}", e.below_legal_floor) for name, e in rules.exceptions.items() if e.below_legal_floor]
    for what, reason in overrides:
        out.print(f"[bold yellow]Below the legal floor:[/] {what}, because: {reason}", highlight=False, soft_wrap=True)


@rules_app.command("show")
@guarded
def rules_show(ctx: typer.Context,
               path: Annotated[Optional[str], typer.Argument(help="Rules file to show.")] = None,
               lang: Annotated[Optional[str], typer.Option(help="nl or en (default: the config's language, else "
                                                                "the locale's)")] = None):
    """Print what is kept, how long, why and on what legal basis."""
    from vergeet.plan_text import choose_language

    if lang not in (None, "nl", "en"):
        raise BadInput(f"--lang: {lang!r} is not nl or en")
    config = _optional_config(ctx.obj)
    rules = load_rules(path) if path else ctx.obj.rules(config)
    print_rules(rules, choose_language(lang, config.language if config else None))


def _optional_config(state: State) -> Config | None:
    """The config if one is named; `rules show` also works without one."""
    from vergeet.config import config_path

    return state.config() if config_path(state.config_path) else None


_RULE_WORDS = {
    "nl": {"title": "Bewaarregels", "applies": "geldt voor", "consent": "nieuwsbriefinschrijving {states}",
           "or": " of ", "kept": "bewaard tot", "then": "daarna", "unless": "tenzij", "meanwhile": "intussen",
           "why": "waarom", "retained_by": "bewaard door {name}", "delete": "verwijderen",
           "anonymise": "onherkenbaar maken: {fields}", "keep": "blijft het bewaard",
           "processors": "Verwerkers en ontvangers", "roles": {"processor": "verwerker", "recipient": "ontvanger"},
           "columns": ("naam", "rol", "dienst", "mag de EER verlaten"), "yes": "ja", "no": "nee",
           "answer": "Verzoeken worden binnen {period} beantwoord; rechten: {rights}.",
           "states": {"subscribed": "ingeschreven", "unconfirmed": "niet bevestigd", "unsubscribed": "uitgeschreven",
                      "bounced": "onbestelbaar"}},
    "en": {"title": "Retention rules", "applies": "applies to", "consent": "newsletter consent {states}",
           "or": " or ", "kept": "kept until", "then": "then", "unless": "unless", "meanwhile": "meanwhile",
           "why": "why", "retained_by": "kept by {name}", "delete": "delete",
           "anonymise": "make unrecognisable: {fields}", "keep": "it stays",
           "processors": "Processors and recipients", "roles": {"processor": "processor", "recipient": "recipient"},
           "columns": ("name", "role", "service", "may leave the EEA"), "yes": "yes", "no": "no",
           "answer": "Requests are answered within {period}; rights: {rights}.",
           "states": {"subscribed": "subscribed", "unconfirmed": "unconfirmed", "unsubscribed": "unsubscribed",
                      "bounced": "bounced"}},
}


def print_rules(rules: Rules, lang: str = "en") -> None:
    """Each rule as a short block in `lang` (periods and reasons in words), then processors: readable at any
    terminal width."""
    from vergeet.access import _TEXT, _field_label, duration_text, period_text

    words = _RULE_WORDS[lang]

    def action(system: str, name: str, fields: list[str]) -> str:
        labels = ", ".join(_field_label(system, f, lang) or f for f in fields)
        return words[name].format(fields=labels) if name == "anonymise" else words[name]

    out.print(f"[bold]{words['title']}[/] ({rules.source})", highlight=False)
    for rule in rules.rules:
        then = action(rule.system, rule.action, rule.fields)
        if rule.retained_by:
            then = words["retained_by"].format(name=rules.system_name(rule.retained_by))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column()
        if rule.consent:
            states = words["or"].join(words["states"].get(state, state) for state in rule.consent)
            grid.add_row(words["applies"], words["consent"].format(states=states))
        grid.add_row(words["kept"], f"{period_text(rule.period, rule.clock, lang)}; {words['then']} {then}")
        if rule.exceptions:
            grid.add_row(words["unless"], "; ".join(getattr(rules.exceptions[e], lang) for e in rule.exceptions))
        if rule.while_retained:
            grid.add_row(words["meanwhile"], action(rule.system, "anonymise", rule.while_retained.fields))
        grid.add_row(words["why"], "; ".join(
            f"{rules.purposes[p].number}. {getattr(rules.purposes[p], lang)} "
            f"({getattr(rules.legal_bases[rules.purposes[p].legal_basis], lang)})" for p in rule.purposes))
        out.print()
        out.print(f"[bold]{getattr(rule, lang)}[/] [dim]({rules.system_name(rule.system)}; {rule.id})[/]",
                  highlight=False)
        out.print(grid)
    out.print()
    processors = Table(title=words["processors"])
    for column in words["columns"]:
        processors.add_column(column)
    for processor in rules.processors.values():
        processors.add_row(processor.name_in(lang), words["roles"].get(processor.role, processor.role),
                           processor.service_in(lang),
                           words["yes"] if processor.outside_eea else words["no"])
    out.print(processors)
    rights = ", ".join(_TEXT[lang]["rights"][r] for r in rules.rights.available)
    out.print(words["answer"].format(period=duration_text(rules.rights.answer_within, lang), rights=rights),
              highlight=False)


# -- requests ------------------------------------------------------------------------------


@requests_app.command("list")
@guarded
def requests_list(ctx: typer.Context,
                  all_: Annotated[bool, typer.Option("--all", help="Also closed requests.")] = False,
                  today: Annotated[Optional[str], typer.Option(help="Count days left from this date (YYYY-MM-DD).")]
                  = None):
    """Open requests with their deadlines; overdue ones are marked."""
    from vergeet.connect import open_ledger

    as_of = parse_day(today, "--today") if today else date.today()
    with open_ledger(ctx.obj.config(), create=False) as ledger:
        requests = ledger.list_requests(open_only=not all_)
    if not requests:
        out.print("No open requests." if not all_ else "No requests.")
        return
    out.print("[bold]Data subject requests[/]")
    for request in requests:
        left = (request["deadline"] - as_of).days
        due = "" if request["closed_at"] else \
            (f": [bold red]OVERDUE by {-left} days[/]" if left < 0 else f": {left} days left")
        kind = request["kind"] + (f" ({request['scope']})" if request["scope"] != "all" else "")
        out.print(f"[bold]{request['id']}[/]  {kind}, received {request['received']}, due {request['deadline']}{due}",
                  highlight=False)
        about = [request["status"].replace("_", " "), *[request["label"]] * bool(request["label"]),
                 f"identity: {request['verified_by'] or 'not noted'}"]
        out.print("    " + " · ".join(about), highlight=False)
    out.print("`vergeet requests show ID` prints one request with its history.")


@requests_app.command("show")
@guarded
def requests_show(ctx: typer.Context,
                  request_id: Annotated[int, typer.Argument(metavar="ID", help="The request's id (requests list).")]):
    """One request: what, when, how identity was verified, and every status it went through."""
    from vergeet.connect import open_ledger
    from vergeet.ledger import LedgerError

    with open_ledger(ctx.obj.config(), create=False) as ledger:
        try:
            request, history = ledger.get_request(request_id), ledger.request_history(request_id)
        except LedgerError as exc:
            raise BadInput(str(exc)) from None
    grid = Table.grid(padding=(0, 2))
    for label, value in (("request", f"{request['id']} {request['label']}".strip()), ("kind", request["kind"]),
                         ("scope", request["scope"]), ("received", str(request["received"])),
                         ("deadline", str(request["deadline"])), ("status", request["status"].replace("_", " ")),
                         ("identity", request["verified_by"] or "not noted")):
        grid.add_row(f"[bold]{label}[/]", value)
    out.print(grid)
    table = Table(title="History")
    for column in ("when (UTC)", "status", "note"):
        table.add_column(column, overflow="fold")
    for event in history:
        table.add_row(f"{event['at']:%Y-%m-%d %H:%M}", event["status"].replace("_", " "), event["note"])
    out.print(table)


@app.command()
@guarded
def digest(ctx: typer.Context,
           send: Annotated[bool, typer.Option("--send/--dry-run", help="E-mail it through [notify] (default: only "
                                                                       "print it).")] = False):
    """The owner's digest: a failed run, tasks waiting for you, people who reappeared after erasure and requests
    close to their deadline (ids and counts only); printed, or e-mailed with --send when there is news."""
    from rich.markup import escape

    from vergeet import notify
    from vergeet.connect import open_ledger

    config = ctx.obj.config()
    if send:
        notify.settings(config)  # no [notify]: BadInput before any work
    with open_ledger(config, create=False) as ledger:
        news = notify.collect(config, ledger, ctx.obj.rules(config), date.today())
    out.print(f"Subject: {news.subject()}\n\n{news.text()}", markup=False, highlight=False)
    if send:
        try:
            sent = notify.deliver(config, news)
        except notify.SendFailed as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        out.print(f"Sent to {', '.join(config.notify.to)}." if sent else "Nothing to report: no mail sent "
                  "([notify] send = \"always\" sends one anyway).", highlight=False)


def parse_day(value: str, option: str) -> date:
    """A YYYY-MM-DD option value, or `BadInput` naming the option."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{option}: {value!r} is not a date in the form YYYY-MM-DD") from None


# -- what the request commands share -------------------------------------------------------

PersonIdentifiers = Annotated[list[str], typer.Argument(
    metavar="IDENTIFIER...", help="The person's e-mail addresses and phone numbers, in any common notation.")]
VerifiedBy = Annotated[str, typer.Option(
    "--verified-by", help="How identity was verified (free text; never a copy of the ID).")]
Received = Annotated[Optional[str], typer.Option(
    "--received", metavar="YYYY-MM-DD", help="When the request came in (default: today).")]
Approve = Annotated[bool, typer.Option("--approve", help="Approve the plan without asking "
                                                         "(for non-interactive runs).")]
Reject = Annotated[Optional[str], typer.Option(
    "--reject", metavar="REASON", help="Refuse the request, for this reason (no personal data): nothing is searched "
                                       "or changed, the request closes.")]
Label = Annotated[str, typer.Option(
    "--label", metavar="TEXT", help="Your name for the request, shown in `requests list` (no personal data: "
                                    "e.g. \"mail 3 Dec\", \"ticket 12\").")]


# -- find: access requests -----------------------------------------------------------------


@app.command()
@guarded
def find(ctx: typer.Context,
         identifiers: PersonIdentifiers,
         name: Annotated[Optional[list[str]], typer.Option(
             "--name", metavar="NAME", help="The person's name, searched too; a record found by name alone is "
                                            "listed as a possible match, never included. Repeatable.")] = None,
         format_: Annotated[str, typer.Option("--format", help="json or html")] = "json",
         out_path: Annotated[Optional[str], typer.Option(
             "--out", metavar="PATH", help="Write the report here (default: JSON to stdout, "
                                           "HTML to access-request-ID.html).")] = None,
         lang: Annotated[str, typer.Option(help="nl or en")] = "nl",
         verified_by: VerifiedBy = "",
         received: Received = None,
         label: Label = "",
         test: Annotated[bool, typer.Option("--test", help="A try-out, not a request: nothing is registered "
                                                           "and the report says so.")] = False):
    """Find everything about a person: the access report, which is also the portability export.

    Registers the access request (hashed identifiers, deadline) in the ledger, or answers the open one that
    shares an identifier; `--test` registers nothing.
    """
    from vergeet import access, tasks
    from vergeet.connect import build_connectors

    if format_ not in ("json", "html"):
        raise BadInput(f"--format: {format_!r} is not json or html")
    if lang not in access.LANGUAGES:
        raise BadInput(f"--lang: {lang!r} is not one of {', '.join(access.LANGUAGES)}")
    subject = access.classify(identifiers, name or ())
    day = parse_day(received, "--received") if received else date.today()
    config = ctx.obj.config()
    rules = ctx.obj.rules(config)
    connectors = build_connectors(config)
    today = date.today()
    with _ledger(config) as ledger:
        request = None if test else access.register_request(ledger, subject, rules, received=day,
                                                            verified_by=verified_by, label=label)
        try:
            with err.status("Searching " + ", ".join(connectors) + " ..."):
                found = access.find_person(connectors, subject, rules, ledger=ledger)
        except access.SearchFailed as exc:
            stays = f"request {request['id']} stays open" if request else "nothing was registered"
            err.print(f"[bold red]error:[/] {exc}; no report was made, {stays}", highlight=False)
            raise typer.Exit(1) from None
        by_hand = tasks.open_for(ledger, request, rules, found.systems) if request else None
        report = access.access_report(found, rules, subject=subject, as_of=today, lang=lang,
                                      context=access.decision_context(ledger, today), request=request,
                                      tasks=tasks.public(by_hand) if by_hand is not None else None)
    terminal = ctx.obj.language(config)
    _write_access_report(report, format_, out_path, terminal)
    _print_access_notices(report, request, today, rules, terminal, by_hand)


def _write_access_report(report: dict, format_: str, out_path: str | None, lang: str) -> None:
    from pathlib import Path

    from vergeet import access

    text = access.report_json(report) if format_ == "json" else access.render_html(report)
    if out_path is None and format_ == "json":
        typer.echo(text)
        return
    path = Path(out_path or (f"access-request-{report['request']['id']}.html" if report["request"]
                             else "access-test.html"))
    try:
        access.write_private(path, text)
    except OSError as exc:
        raise BadInput(f"--out: cannot write {path} ({exc.strerror})") from None
    from vergeet.plan_text import REQUEST_WORDS

    err.print(REQUEST_WORDS[lang]["written"].format(path=path.resolve()), highlight=False)


def _print_access_notices(report: dict, request: dict | None, today: date, rules: Rules, lang: str,
                          by_hand: list[dict] | None = None) -> None:
    """What the operator must know, on stderr (stdout may carry the JSON), in `lang`: record references, never
    identifiers."""
    from vergeet.plan_text import REQUEST_WORDS

    words = REQUEST_WORDS[lang]
    held = ", ".join(f"{s['name']} {s['records']}" for s in report["systems"] if s["status"] == "searched")
    if request is None:
        err.print(words["test"].format(held=held), highlight=False, soft_wrap=True)
    else:
        err.print(words["access"].format(id=request["id"], received=request["received"], deadline=request["deadline"],
                                         days=(request["deadline"] - today).days, held=held),
                  highlight=False, soft_wrap=True)
    _print_checklist(rules, [s["system"] for s in report["systems"] if s["status"] == "searched"], lang, by_hand)
    matches = report["possible_matches"]
    if matches:
        err.print(words["matches"].format(n=len(matches)), highlight=False, soft_wrap=True)
        for match in matches:
            err.print(f"  {match['system']} {match['record_type']} {match['record_id']} "
                      f"({match['found_by'].replace('_', ' ')})", highlight=False, soft_wrap=True)
    left = report["search"]["identifiers_left_unsearched"]
    if left:
        err.print(words["incomplete"].format(rounds=report["search"]["rounds"], left=left), highlight=False,
                  soft_wrap=True)


def _print_checklist(rules: Rules, searched: list[str], lang: str, by_hand: list[dict] | None = None) -> None:
    """The owner's checklist of what vergeet did not search (`access.checklist`), on stderr, in `lang`; with the
    request's tasks by hand (`vergeet.tasks`), the open ones by their ids."""
    from vergeet.access import checklist, coverage
    from vergeet.plan_text import REQUEST_WORDS
    from vergeet.tasks import WORDS, described

    if by_hand is None:
        lines = [f"- {line}" for line in checklist(coverage(rules, searched, lang), lang)]
    else:
        lines = [f"{task['id']}  {described(task, rules, lang)['what']}" for task in by_hand
                 if task["status"] == "open"]
    if lines:
        err.print(REQUEST_WORDS[lang]["check"], highlight=False)
        for line in lines:
            err.print(f"  {line}", highlight=False, soft_wrap=True)
        if by_hand is not None:
            err.print(WORDS[lang]["mark"], highlight=False, soft_wrap=True)


@requests_app.command("close")
@guarded
def requests_close(ctx: typer.Context,
                   request_id: Annotated[int, typer.Argument(metavar="ID", help="The request's id (requests list).")],
                   status: Annotated[str, typer.Option(help="completed (answered) or rejected")] = "completed",
                   note: Annotated[str, typer.Option(help="Why, without personal data.")] = ""):
    """Close a request: an access request answered (completed), or any request refused (rejected, with --note
    saying why). An erasure is completed by `vergeet erase` only, once it is done and verified. Open requests
    pause the purge for the person."""
    from vergeet.connect import open_ledger
    from vergeet.ledger import LedgerError

    if status not in ("completed", "rejected"):
        raise BadInput(f"--status: {status!r} is not completed or rejected")
    if status == "rejected" and not note.strip():
        raise BadInput("--note: a refusal needs its reason (no personal data)")
    with open_ledger(ctx.obj.config(), create=False) as ledger:
        try:
            if status == "completed" and ledger.get_request(request_id)["kind"] == "erasure":
                raise BadInput(f"request {request_id} is an erasure: it is completed by `vergeet erase` once "
                               "everything is erased and verified, not by closing it")
            ledger.set_request_status(request_id, status, note)
        except LedgerError as exc:
            raise BadInput(str(exc)) from None
        still_open = len(ledger.tasks(request_id=request_id, open_only=True)) if status == "completed" else 0
    out.print(f"Request {request_id} is {status}.")
    if still_open:
        err.print(f"warning: {still_open} task(s) by hand of request {request_id} are still open, and its answer "
                  f"says they were not gone through; mark them with `vergeet tasks done|na` (vergeet tasks "
                  f"--request {request_id}).", highlight=False, soft_wrap=True)


# -- hold: legal holds ---------------------------------------------------------------------


@hold_app.command("add")
@guarded
def hold_add(ctx: typer.Context,
             identifiers: Annotated[Optional[list[str]], typer.Argument(
                 metavar="[IDENTIFIER...]", help="The person's e-mail addresses and phone numbers (stored hashed).")]
             = None,
             record: Annotated[Optional[str], typer.Option(
                 "--record", metavar="SYSTEM/TYPE/ID", help="Hold one record instead of a person.")] = None,
             reason: Annotated[str, typer.Option(help="Why (no personal data), e.g. \"dispute about invoice "
                                                      "2024-017\".")] = "",
             until: Annotated[Optional[str], typer.Option(metavar="YYYY-MM-DD", help="Last day of the hold "
                                                                                   "(default: until released).")]
             = None):
    """Place a legal hold: the person's records (or the record) are kept by every purge and erasure."""
    import connectors
    from vergeet import access, holds

    if bool(identifiers) == bool(record):
        raise BadInput("give the person's identifiers or --record SYSTEM/TYPE/ID, one of the two")
    target = holds.parse_record(record, connectors.SYSTEMS) if record else None
    person = access.classify(identifiers) if identifiers else None
    end = parse_day(until, "--until") if until else None
    with _ledger(ctx.obj.config()) as ledger:
        placed = holds.place(ledger, reason=reason, until=end, today=date.today(), person=person, record=target)
    what = f"record {record}" if record else f"{len(placed)} identifiers (stored hashed)"
    out.print(f"Legal hold {', '.join(map(str, placed))} on {what}, {'until ' + str(end) if end else 'until released'}"
              f": {reason}", highlight=False, soft_wrap=True)


@hold_app.command("list")
@guarded
def hold_list(ctx: typer.Context,
              all_: Annotated[bool, typer.Option("--all", help="Also released and expired holds.")] = False):
    """The legal holds in force (or all of them), with what they hold and why."""
    from vergeet.connect import open_ledger

    today = date.today()
    with open_ledger(ctx.obj.config(), create=False) as ledger:
        placed = ledger.holds()
    shown = [h for h in placed if all_ or (h["released_at"] is None and (h["until"] is None or h["until"] >= today))]
    if not shown:
        out.print("No legal holds in force." if not all_ else "No legal holds.")
        return
    for hold in shown:
        target = "record " + "/".join(hold["record"]) if hold["record"] else "a person (identifier, hashed)"
        if hold["released_at"]:
            state = f"released {hold['released_at']:%Y-%m-%d}: {hold['released_because'] or 'no reason noted'}"
        elif hold["until"] is not None and hold["until"] < today:
            state = f"ended {hold['until']}"
        else:
            state = f"until {hold['until']}" if hold["until"] else "until released"
        out.print(f"[bold]{hold['id']}[/]  {target}, placed {hold['created_at']:%Y-%m-%d}, {state}", highlight=False)
        out.print(f"    {hold['reason']}", highlight=False)


@hold_app.command("release")
@guarded
def hold_release(ctx: typer.Context,
                 hold_id: Annotated[int, typer.Argument(metavar="ID", help="The hold's id (hold list).")],
                 reason: Annotated[str, typer.Option(help="Why it ends (no personal data).")] = ""):
    """End a legal hold; the next purge decides on what it kept as the rules say."""
    from vergeet import holds
    from vergeet.connect import open_ledger

    with open_ledger(ctx.obj.config(), create=False) as ledger:
        holds.release(ledger, hold_id, reason)
    out.print(f"Legal hold {hold_id} released: {reason}", highlight=False)


# -- erase: erasure requests ---------------------------------------------------------------


def _request_setup(ctx: typer.Context, lang: str, approve: bool, reject: str | None, received: str | None):
    """What `erase` and `correct` check and load before a request: --lang, --reject's reason, --received; then the
    day received, the config, the terminal's language, the rules and the connectors."""
    from vergeet import access
    from vergeet.connect import build_connectors

    if lang not in access.LANGUAGES:
        raise BadInput(f"--lang: {lang!r} is not one of {', '.join(access.LANGUAGES)}")
    if reject is not None and (approve or not reject.strip()):
        raise BadInput("--reject: give the reason for refusing (no personal data), and not together with --approve")
    day = parse_day(received, "--received") if received else date.today()
    config = ctx.obj.config()
    return day, config, ctx.obj.language(config), ctx.obj.rules(config), build_connectors(config)


@app.command()
@guarded
def erase(ctx: typer.Context,
          identifiers: PersonIdentifiers,
          name: Annotated[Optional[list[str]], typer.Option(
              "--name", metavar="NAME", help="The person's name, searched too (never erases on its own).")] = None,
          scope: Annotated[Optional[list[str]], typer.Option(
              "--scope", metavar="all|newsletter|SYSTEM",
              help="What to erase: all (default), newsletter (withdrawn consent), or a system. Repeatable.")] = None,
          approve: Approve = False,
          reject: Reject = None,
          verified_by: VerifiedBy = "",
          label: Label = "",
          lang: Annotated[str, typer.Option(help="Language of the certificate: nl or en")] = "nl",
          out_dir: Annotated[str, typer.Option("--out", metavar="DIR",
                                               help="Where the certificate (HTML and JSON) goes.")] = ".",
          received: Received = None):
    """Carry out an erasure request: show the plan, ask for approval, erase, verify, and write a certificate."""
    from vergeet import access, erasure
    from vergeet.ledger import LeaseHeld, LeaseLost
    from vergeet.plan_text import REQUEST_WORDS, erasure_text
    from vergeet.present import summary_table

    person = access.classify(identifiers, name or ())
    words = [w for part in (scope or [erasure.ALL]) for w in part.split(",") if w]
    day, config, terminal, rules, connectors = _request_setup(ctx, lang, approve, reject, received)
    systems = erasure.scope_systems(words, rules, connectors)
    today = date.today()
    with _ledger(config, applying=True) as ledger:  # an erasure must be remembered
        request = erasure.register(ledger, person, rules, received=day, verified_by=verified_by, scope=words,
                                   label=label)
        if reject is not None:
            erasure.reject(ledger, request, reject)
            out.print(f"Request {request['id']} rejected: nothing was searched or changed.")
            return
        try:
            with err.status("Searching " + ", ".join(connectors) + " ..."):
                plan = erasure.plan_erasure(connectors, person, rules, ledger, request, as_of=today, systems=systems)
        except access.SearchFailed as exc:
            err.print(f"[bold red]error:[/] {exc}; nothing was erased, request {request['id']} stays open",
                      highlight=False)
            raise typer.Exit(1) from None
        out.print(erasure_text(plan, rules, terminal))
        _print_checklist(rules, list(plan.searched), terminal, plan.by_hand)
        summary = None
        if not plan.empty:
            if not approve:
                if not _interactive():
                    erasure.not_now(ledger, request, "plan shown; not approved")
                    raise BadInput("not approved: run interactively to confirm, or pass --approve")
                count = len(plan.plan.actions)
                if not typer.confirm(f"Erase {'this record' if count == 1 else f'these {count} records'} now?",
                                     default=False):
                    erasure.not_now(ledger, request, "plan shown; not approved yet at the prompt")
                    out.print(f"Nothing was changed. Request {request['id']} stays open (due "
                              f"{request['deadline']}): run the same command again to erase, or refuse it with "
                              '--reject "REASON".', highlight=False)
                    return
            erasure.approve(ledger, request, "approved with --approve" if approve else "approved at the prompt")
            try:
                summary = _with_progress(len(plan.plan.actions), f"Request {request['id']}",
                                         lambda advance: erasure.execute(ledger, plan, connectors, advance))
            except (LeaseHeld, LeaseLost) as exc:
                err.print(f"[bold red]busy:[/] {exc}; request {request['id']} stays open. Run the same command "
                          "again once that run has finished.", highlight=False)
                raise typer.Exit(1) from None
            out.print(summary_table(summary.rows(), f"Erasure request {request['id']}"))
            _print_stopped(summary)
        with err.status("Searching again to verify ..."):
            still_found = erasure.verify(connectors, plan, rules, ledger=ledger) if summary else []
        status = erasure.finish(ledger, plan, summary, still_found)
        certificate = erasure.certificate(ledger, plan, rules, summary, still_found, status, lang)
    paths = erasure.write_certificate(certificate, Path(out_dir))
    words = REQUEST_WORDS[terminal]
    out.print(words["result"].format(id=request["id"], status=words["statuses"].get(status, status),
                                     paths=", ".join(str(p) for p in paths)), highlight=False)
    if status != "completed":
        err.print(words["still_found"].format(n=len(still_found)), highlight=False)
        raise typer.Exit(1)


# -- correct: rectification requests -------------------------------------------------------


@app.command()
@guarded
def correct(ctx: typer.Context,
            identifiers: PersonIdentifiers,
            settings: Annotated[list[str], typer.Option(
                "--set", metavar="FIELD=VALUE",
                help="What is corrected: name, email, phone, address (\"Street 1, 1234 AB City\") or address.street, "
                     "address.postcode, address.city. Repeatable.")],
            approve: Approve = False,
            reject: Reject = None,
            verified_by: VerifiedBy = "",
            label: Label = "",
            lang: Annotated[str, typer.Option(help="Language of the confirmation: nl or en")] = "nl",
            out_dir: Annotated[str, typer.Option("--out", metavar="DIR",
                                                 help="Where the confirmation (HTML and JSON) goes.")] = ".",
            received: Received = None):
    """Carry out a rectification request: show what changes where, ask for approval, correct, read back, confirm."""
    from vergeet import access, erasure, rectify
    from vergeet.ledger import LeaseHeld, LeaseLost
    from vergeet.present import summary_table

    new = rectify.parse_settings(settings)
    person = access.classify(identifiers)
    day, config, terminal, rules, connectors = _request_setup(ctx, lang, approve, reject, received)
    words = rectify.WORDS[terminal]
    with _ledger(config, applying=True) as ledger:
        if reject is not None:
            request = rectify.register(ledger, person, rules, new, received=day, verified_by=verified_by, label=label)
            erasure.reject(ledger, request, reject)
            out.print(words["rejected"].format(id=request["id"]), highlight=False)
            return
        try:
            with err.status("Searching " + ", ".join(connectors) + " ..."):
                plan = rectify.plan_rectification(connectors, person, new, rules, ledger)
        except access.SearchFailed as exc:
            err.print(f"[bold red]error:[/] {exc}; nothing was registered or changed", highlight=False)
            raise typer.Exit(1) from None
        plan.request = request = rectify.register(ledger, person, rules, new, received=day, verified_by=verified_by,
                                                  label=label)
        out.print(rectify.plan_table(plan, rules, terminal))
        _print_checklist(rules, list(plan.searched), terminal)
        summary = None
        if not plan.empty:
            if not approve and not (_interactive() and typer.confirm(
                    words["ask"].format(n=len(plan.to_make())), default=False)):
                erasure.not_now(ledger, request, "plan shown; not approved")
                out.print(words["not_now"].format(id=request["id"], deadline=request["deadline"]), highlight=False)
                raise typer.Exit(0 if _interactive() else 2)
            erasure.approve(ledger, request, "approved with --approve" if approve else "approved at the prompt")
            try:
                summary = rectify.execute(ledger, plan, connectors)
            except (LeaseHeld, LeaseLost) as exc:
                err.print(f"[bold red]busy:[/] {exc}; request {request['id']} stays open. Run the same command "
                          "again once that run has finished.", highlight=False)
                raise typer.Exit(1) from None
            out.print(summary_table(summary.rows(), f"Rectification request {request['id']}"))
        differs = rectify.verify(ledger, plan, connectors) if summary else []
        status = rectify.finish(ledger, plan, summary, differs)
        document = rectify.confirmation(ledger, plan, rules, differs, status, lang)
    paths = rectify.write_confirmation(document, Path(out_dir))
    out.print(words["result"].format(id=request["id"], status=words["statuses"][status],
                                     paths=", ".join(str(p) for p in paths)), highlight=False)
    if status != "completed":
        err.print(words["differs"].format(n=len(differs)), highlight=False)
        raise typer.Exit(1)


def _interactive() -> bool:
    """Whether someone can answer a prompt (not a cron job, a pipe or a CI run)."""
    return sys.stdin.isatty()


# -- tasks: what the owner does by hand ------------------------------------------------------


@tasks_app.callback(invoke_without_command=True)
@guarded
def tasks_list(ctx: typer.Context,
               all_: Annotated[bool, typer.Option("--all", help="Also tasks done or not applicable.")] = False,
               request: Annotated[Optional[int], typer.Option("--request", metavar="ID",
                                                               help="Only this request's tasks.")] = None):
    """The tasks by hand of the requests (open ones by default), then what the vendors' APIs left to you."""
    if ctx.invoked_subcommand is not None:
        return
    from vergeet import notify, tasks
    from vergeet.connect import open_ledger

    config = ctx.obj.config()
    rules = ctx.obj.rules(config)
    lang = ctx.obj.language(config)
    words = tasks.WORDS[lang]
    with open_ledger(config, create=False) as ledger:
        rows = [tasks.described(task, rules, lang) for task in ledger.tasks(request_id=request, open_only=not all_)]
        handed = [] if request is not None else tasks.handed_over(notify.cached_plan(config, ledger, rules,
                                                                                     date.today()))
    if rows:
        out.print(f"[bold]{words['title']}[/]", highlight=False)
    elif not handed:
        out.print(words["none_all"] if all_ else words["none"], highlight=False)
    for task in rows:
        state = words["statuses"][task["status"]]
        if task["done_at"]:
            state += f" {task['done_at']:%Y-%m-%d}" + (f": {task['note']}" if task["note"] else "")
        about = words["request"].format(id=task["request_id"], kind=words["kinds"].get(task["request_kind"]),
                                        deadline=task["deadline"])
        out.print(f"[bold]{task['id']}[/]  {task['what']}", highlight=False, soft_wrap=True)
        out.print(f"    {about} · {state}", highlight=False, soft_wrap=True)
    if any(task["status"] == "open" for task in rows):
        out.print(words["mark"], highlight=False, soft_wrap=True)
    if handed:
        out.print(words["handed_over"], highlight=False, soft_wrap=True)
        for item in handed:
            since = ", " + words["since"].format(day=f"{item['since']:%Y-%m-%d}") if item["since"] else ""
            out.print(f"  {item['key']} ({words['do'].get(item['action'], item['action'])}{since}): "
                      f"{item['detail']}", highlight=False, soft_wrap=True)


def _mark_task(ctx: typer.Context, task_id: int, status: str, note: str) -> None:
    """Mark a task, and say when that settles its request's last one (and how to renew an erasure certificate)."""
    from vergeet import tasks
    from vergeet.connect import open_ledger
    from vergeet.ledger import LedgerError

    config = ctx.obj.config()
    rules = ctx.obj.rules(config)
    lang = ctx.obj.language(config)
    words = tasks.WORDS[lang]
    with open_ledger(config, create=False) as ledger:
        try:
            ledger.set_task_status(task_id, status, note)
        except LedgerError as exc:
            raise BadInput(str(exc)) from None
        task = next(t for t in ledger.tasks() if t["id"] == task_id)
        settled = tasks.settled(ledger, task["request_id"])
    out.print(words["marked"].format(id=task_id, name=tasks.described(task, rules, lang)["name"],
                                     request=task["request_id"], status=words["statuses"][status]), highlight=False)
    if settled and status != "open":
        out.print(words["all_done"].format(request=task["request_id"]), highlight=False)
        if task["request_kind"] == "erasure":
            out.print(words["renew"].format(request=task["request_id"]), highlight=False, soft_wrap=True)


TaskId = Annotated[int, typer.Argument(metavar="ID", help="The task's id (vergeet tasks).")]


@tasks_app.command("done")
@guarded
def tasks_done(ctx: typer.Context, task_id: TaskId,
               note: Annotated[str, typer.Option(help="What you did, without personal data.")] = ""):
    """Mark a task by hand done."""
    _mark_task(ctx, task_id, "done", note)


@tasks_app.command("na")
@guarded
def tasks_na(ctx: typer.Context, task_id: TaskId,
             note: Annotated[str, typer.Option(help="Why it does not apply, without personal data.")]):
    """Mark a task by hand not applicable, with the reason."""
    _mark_task(ctx, task_id, "not_applicable", note)


@tasks_app.command("reopen")
@guarded
def tasks_reopen(ctx: typer.Context, task_id: TaskId,
                 note: Annotated[str, typer.Option(help="Why, without personal data.")] = ""):
    """Open a task again (marked by mistake, or there is more to do)."""
    _mark_task(ctx, task_id, "open", note)


@tasks_app.command("certificate")
@guarded
def tasks_certificate(path: Annotated[str, typer.Argument(metavar="PATH", help="An erasure certificate's JSON "
                                                                             "(erasure-request-ID.json).")],
                      ctx: typer.Context):
    """Write an erasure certificate anew (HTML and JSON, beside the old one) with its tasks by hand as they stand."""
    from vergeet import erasure
    from vergeet.connect import open_ledger

    source = Path(path)
    try:
        certificate = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: cannot read it as JSON ({exc})") from None
    if not isinstance(certificate, dict) or certificate.get("format") != "vergeet-erasure-certificate/1":
        raise BadInput(f"{path}: not an erasure certificate (format vergeet-erasure-certificate/1)")
    with open_ledger(ctx.obj.config(), create=False) as ledger:
        renewed = erasure.refresh_certificate(ledger, certificate)
    paths = erasure.write_certificate(renewed, source.parent)
    out.print(", ".join(str(p) for p in paths), highlight=False)
