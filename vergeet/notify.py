"""The owner's e-mail digest: what needs a human, in one mail through SMTP, only when there is something to say.

Five things: a failed nightly run (the flow's own failure, and the last applied purge run's failed actions), the
tasks the vendors' APIs cannot do (handed to the owner and still waiting), records of people who reappeared after
their erasure, open requests within `deadline_days` of their deadline, and the open tasks by hand
(`vergeet.tasks`) of requests that close. Tasks and reappeared records come from
a plan over the ledger's cache of what the last run saw, as the next night would make it: no vendor is asked.
The mail holds record ids, counts, dates and request ids only: no names or addresses, not even masked ones.
"""
from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from vergeet import tasks
from vergeet.config import Config, ConnectorsConfig, NotifyConfig, load_config
from vergeet.errors import BadInput
from vergeet.ledger import Ledger
from vergeet.plan_text import choose_language
from vergeet.rules import Rules, load_rules

#: items listed per kind; the rest is counted
SHOWN = 20
SMTP_TIMEOUT_SECONDS = 30

_WORDS = {
    "nl": {
        "title": "vergeet: overzicht van {day}",
        "failure": "De nachtelijke run is mislukt: {reason}",
        "run": "De laatste uitgevoerde run, {run} ({day}): {status}.",
        "run_failed": "Run {run} ({day}) is mislukt: {failed}; de volgende run probeert ze opnieuw:",
        "status": {"succeeded": "geslaagd", "failed": "mislukt", "aborted": "afgebroken",
                   "running": "niet afgemaakt (de volgende run maakt hem af)"},
        "actions": ("actie mislukt", "acties mislukt"),
        "waiting": "Wacht op jou, {n}: de API van de leverancier kan het niet (`vergeet purge` zegt wat waar te "
                   "doen):",
        "tasks": ("taak", "taken"),
        "reappeared": "Weer opgedoken na verwijdering: {n} van mensen die eerder gewist zijn (`vergeet purge` "
                      "toont ze):",
        "records": ("gegeven", "gegevens"),
        "due": "Verzoeken met een termijn binnen {days} dagen, {n} (`vergeet requests list`):",
        "requests": ("verzoek", "verzoeken"),
        "request": "verzoek {id} ({kind}): uiterlijk {deadline}, {left}",
        "left": "nog {n} dagen", "today": "vandaag", "late": "{n} dagen te laat",
        "kinds": {"access": "inzage", "erasure": "verwijdering", "rectification": "correctie",
                  "objection": "bezwaar"},
        "do": {"delete": "verwijderen", "anonymise": "onherkenbaar maken"},
        "since": "sinds {day}", "more": "en nog {n}",
        "subject_parts": ("nachtelijke run mislukt", "{n} wacht op jou", "{n} weer opgedoken",
                          "{n} bijna verlopen", "{n} met de hand"),
        "by_hand": "Taken met de hand van verzoeken met een termijn binnen {days} dagen, {n} (`vergeet tasks`):",
        "task": "taak {id} (verzoek {request}, uiterlijk {deadline}, {left}): {what}",
        "nothing": "Niets te melden: geen fouten, niets wacht op jou, geen verzoek dicht bij zijn termijn.",
        "nothing_subject": "niets te melden",
    },
    "en": {
        "title": "vergeet: digest of {day}",
        "failure": "The nightly run failed: {reason}",
        "run": "The last applied run, {run} ({day}): {status}.",
        "run_failed": "Run {run} ({day}) failed: {failed}; the next run retries them:",
        "status": {"succeeded": "succeeded", "failed": "failed", "aborted": "aborted",
                   "running": "not finished (the next run finishes it)"},
        "actions": ("action failed", "actions failed"),
        "waiting": "Waiting for you, {n}: the vendor's API cannot do it (`vergeet purge` says what to do where):",
        "tasks": ("task", "tasks"),
        "reappeared": "Reappeared after erasure: {n} of people erased before (`vergeet purge` shows them):",
        "records": ("record", "records"),
        "due": "Requests due within {days} days, {n} (`vergeet requests list`):",
        "requests": ("request", "requests"),
        "request": "request {id} ({kind}): due {deadline}, {left}",
        "left": "{n} days left", "today": "today", "late": "{n} days overdue",
        "kinds": {"access": "access", "erasure": "erasure", "rectification": "rectification",
                  "objection": "objection"},
        "do": {"delete": "delete", "anonymise": "make unrecognisable"},
        "since": "since {day}", "more": "and {n} more",
        "subject_parts": ("nightly run failed", "{n} waiting for you", "{n} reappeared", "{n} due soon",
                          "{n} by hand"),
        "by_hand": "Tasks by hand of requests due within {days} days, {n} (`vergeet tasks`):",
        "task": "task {id} (request {request}, due {deadline}, {left}): {what}",
        "nothing": "Nothing to report: no failures, nothing waits for you, no request close to its deadline.",
        "nothing_subject": "nothing to report",
    },
}


class SendFailed(Exception):
    """The SMTP server could not be reached or refused the digest; the message names the server."""


@dataclass(frozen=True)
class Digest:
    """What the owner needs to hear, in record ids, counts and request ids only."""

    day: date
    lang: str
    #: the nightly flow's own failure, one line
    failure: str | None = None
    #: the last applied purge run: id, as_of, status
    last_run: dict | None = None
    #: the last run's failed actions: (record key, action)
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: tasks handed to the owner: (record key, action, since)
    waiting: list[tuple[str, str, date | None]] = field(default_factory=list)
    #: record keys of people who reappeared after their erasure
    reappeared: list[str] = field(default_factory=list)
    #: open requests near or past their deadline: (request id, kind, deadline)
    due: list[tuple[int, str, date]] = field(default_factory=list)
    deadline_days: int = 5
    #: open tasks by hand of requests near or past their deadline: (task id, request id, deadline, what to do)
    by_hand: list[tuple[int, int, date, str]] = field(default_factory=list)

    def has_news(self) -> bool:
        return bool(self.failure or self.failed or self.waiting or self.reappeared or self.due or self.by_hand)

    def subject(self) -> str:
        words = _WORDS[self.lang]
        failed, waiting, reappeared, due, by_hand = words["subject_parts"]
        parts = [failed] * bool(self.failure or self.failed)
        parts += [text.format(n=len(items)) for text, items in ((waiting, self.waiting),
                                                                (reappeared, self.reappeared), (due, self.due),
                                                                (by_hand, self.by_hand))
                  if items]
        return "vergeet: " + (", ".join(parts) or words["nothing_subject"])

    def text(self) -> str:
        words = _WORDS[self.lang]
        lines = [words["title"].format(day=self.day), ""]
        if self.failure:
            lines += [words["failure"].format(reason=self.failure), ""]
        if self.last_run is not None:
            run = {"run": self.last_run["id"], "day": self.last_run["as_of"]}
            if self.failed:
                lines.append(words["run_failed"].format(failed=_counted(len(self.failed), words["actions"]), **run))
                lines += _listed([f"{key} ({words['do'].get(action, action)})" for key, action in self.failed],
                                 words)
            else:
                status = self.last_run["status"]
                lines.append(words["run"].format(status=words["status"].get(status, status), **run))
            lines.append("")
        if self.waiting:
            lines.append(words["waiting"].format(n=_counted(len(self.waiting), words["tasks"])))
            lines += _listed([f"{key} ({words['do'].get(action, action)}"
                              + (f", {words['since'].format(day=since)})" if since else ")")
                              for key, action, since in self.waiting], words)
            lines.append("")
        if self.reappeared:
            lines.append(words["reappeared"].format(n=_counted(len(self.reappeared), words["records"])))
            lines += _listed(self.reappeared, words)
            lines.append("")
        if self.due:
            lines.append(words["due"].format(days=self.deadline_days,
                                             n=_counted(len(self.due), words["requests"])))
            lines += _listed([words["request"].format(id=request_id, kind=words["kinds"].get(kind, kind),
                                                      deadline=deadline, left=self._left(deadline))
                              for request_id, kind, deadline in self.due], words)
            lines.append("")
        if self.by_hand:
            lines.append(words["by_hand"].format(days=self.deadline_days,
                                                 n=_counted(len(self.by_hand), words["tasks"])))
            lines += _listed([words["task"].format(id=task_id, request=request_id, deadline=deadline,
                                                   left=self._left(deadline), what=what)
                              for task_id, request_id, deadline, what in self.by_hand], words)
            lines.append("")
        if not self.has_news():
            lines += [words["nothing"], ""]
        return "\n".join(lines)

    def _left(self, deadline: date) -> str:
        words, left = _WORDS[self.lang], (deadline - self.day).days
        return words["today"] if left == 0 else (words["left"] if left > 0 else words["late"]).format(n=abs(left))


def _counted(n: int, nouns: tuple[str, str]) -> str:
    return f"{n} {nouns[n != 1]}"


def _listed(items: list[str], words: dict) -> list[str]:
    """The first `SHOWN` items indented, the rest counted."""
    rest = len(items) - SHOWN
    return [f"  {item}" for item in items[:SHOWN]] + ([f"  {words['more'].format(n=rest)}"] if rest > 0 else [])


def collect(config: Config, ledger: Ledger, rules: Rules, day: date, failure: str | None = None) -> Digest:
    """The digest from the ledger (and the flow's own `failure`, if any), in the config's language."""
    deadline_days = config.notify.deadline_days if config.notify else 5
    runs = [run for run in ledger.list_runs() if run["kind"] == "purge" and run["apply"]]
    last_run = ({key: runs[0][key] for key in ("id", "as_of", "status")} if runs else None)
    failed = [(_key(action), action["action"]) for action in ledger.actions(runs[0]["id"], ("failed",))] \
        if runs else []
    waiting, reappeared = _from_cache(config, ledger, rules, day)
    due = [(request["id"], request["kind"], request["deadline"]) for request in ledger.list_requests()
           if (request["deadline"] - day).days <= deadline_days]
    lang = choose_language(None, config.language)
    by_hand = [(task["id"], task["request_id"], task["deadline"], task["what"])
               for task in tasks.due(ledger, rules, day, deadline_days, lang)]
    return Digest(day, lang, failure, last_run, failed, waiting, reappeared, due, deadline_days, by_hand)


def _key(row) -> str:
    return f"{row['system']}/{row['record_type']}/{row['record_id']}"


def cached_plan(config: Config, ledger: Ledger, rules: Rules, day: date):
    """The plan the next night would make over what the last run saw of each connected system (no vendor is
    asked); None when the ledger has seen nothing yet."""
    from vergeet import pipeline
    from vergeet.sync import Snapshot

    connected = [system for system in ConnectorsConfig.model_fields if getattr(config.connectors, system)]
    snapshots = {system: Snapshot(system, cached) for system in connected if (cached := ledger.cached_records(system))}
    if not snapshots:
        return None
    return pipeline.make_plan(pipeline.identity_view(snapshots, rules), rules, day, ledger)


def _from_cache(config: Config, ledger: Ledger, rules: Rules,
                day: date) -> tuple[list[tuple[str, str, date | None]], list[str]]:
    """The waiting tasks and reappeared records of `cached_plan`."""
    import pandas as pd

    plan = cached_plan(config, ledger, rules, day)
    if plan is None:
        return [], []
    waiting = [(_key(row), row["action"], pd.Timestamp(row["since"]).date() if pd.notna(row["since"]) else None)
               for row in plan.awaiting_owner.to_dict("records")]
    return waiting, [_key(row) for row in plan.reappeared.drop_duplicates("key").to_dict("records")]


def message(config: Config, digest: Digest) -> EmailMessage:
    """The digest as a plain-text mail from and to the addresses in [notify]."""
    section = settings(config)
    mail = EmailMessage()
    mail["Subject"] = digest.subject()
    mail["From"] = section.sender
    mail["To"] = ", ".join(section.to)
    mail["Date"] = formatdate(localtime=True)
    mail["Message-ID"] = make_msgid(domain=section.sender.rpartition("@")[2])
    mail.set_content(digest.text())
    return mail


def deliver(config: Config, digest: Digest) -> bool:
    """Send the digest when it has news (or [notify] send = "always"); whether it was sent.

    A secret reference that does not resolve is `BadInput` naming notify.password; a server that cannot be
    reached or refuses is `SendFailed` naming it.
    """
    section = settings(config)
    if not digest.has_news() and section.send == "when_needed":
        return False
    password = config.resolve_secret("notify.password", section.password) if section.password else None
    mail = message(config, digest)
    port = section.smtp_port()
    where = f"{config.source}: notify: SMTP server {section.host}:{port}"
    try:
        if section.security == "ssl":
            smtp = smtplib.SMTP_SSL(section.host, port, timeout=SMTP_TIMEOUT_SECONDS,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(section.host, port, timeout=SMTP_TIMEOUT_SECONDS)
        with smtp:
            if section.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if section.username:
                smtp.login(section.username, password)
            smtp.send_message(mail)
    except smtplib.SMTPAuthenticationError:
        raise SendFailed(f"{where} refused the login of notify.username with the password from "
                         f"{section.password}; the digest was not sent") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SendFailed(f"{where}: the digest was not sent ({type(exc).__name__}: {exc})") from None
    return True


def after_run(config_path: str | None, failure: str | None, log: logging.Logger | logging.LoggerAdapter) -> bool:
    """The nightly flow's last step: the digest, sent when [notify] is configured; whether it was sent.

    With a `failure` (its first line goes into the mail), a ledger or rules that cannot be read still leave the
    failure to be sent. A digest that cannot be made or sent is logged as one error line, never raised: the run's
    own outcome stays what it was.
    """
    failure = failure.strip().splitlines()[0] if failure and failure.strip() else failure
    try:
        config = load_config(config_path)
        if config.notify is None:
            return False
        day = date.today()
        try:
            from vergeet.connect import open_ledger

            rules = load_rules(config.rules_file())
            with open_ledger(config, create=False) as ledger:
                digest = collect(config, ledger, rules, day, failure)
        except BadInput:
            if failure is None:
                raise
            digest = Digest(day, choose_language(None, config.language), failure,
                            deadline_days=config.notify.deadline_days)
        sent = deliver(config, digest)
    except (BadInput, SendFailed) as exc:
        log.error("the e-mail digest was not sent: %s", exc)
        return False
    if sent:
        log.info("e-mail digest sent to %s address(es)", len(config.notify.to))
    return sent


def settings(config: Config) -> NotifyConfig:
    """[notify], or `BadInput` saying it is missing."""
    if config.notify is None:
        raise BadInput(f"{config.source}: notify: there is no [notify] table; add one to send the digest "
                       "(see README, \"E-mail digest\")")
    return config.notify
