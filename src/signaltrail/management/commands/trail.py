"""``manage.py trail``: work with the audit trail from the command line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# The outbox's backlog by status, for ``trail relay --once``; a status not listed
# here (a newer one) is shown as stored.
_BACKLOG = {
    "pending": gettext_noop("%(n)d pending"),
    "enqueued": gettext_noop("%(n)d enqueued"),
    "running": gettext_noop("%(n)d running"),
    "dead": gettext_noop("%(n)d dead"),
}


class Command(BaseCommand):
    # A property, not a class attribute: translated when the parser is built, in
    # the language active then (argparse cannot format a lazy string).
    @property
    def help(self) -> str:  # type: ignore[override]
        return _(
            "Work with the audit trail. Subcommands: 'verify' checks that no event was "
            "edited, inserted, deleted or reordered outside signaltrail; 'signals' lists "
            "signals and their receivers; 'relay' sends the calls of @in_background "
            "receivers that are due."
        )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        verify = sub.add_parser(
            "verify",
            help=_(
                "Check the integrity of the trail; exits with status 1 if it was tampered with."
            ),
            description=_(
                "Recompute every event's hash and follow the chain of events. Reports each "
                "event that was changed or inserted outside signaltrail, and each place "
                "where events were deleted or reordered."
            ),
        )
        verify.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help=_("Database alias whose events to verify (default: %(default)s)."),
        )
        verify.add_argument(
            "--no-progress", action="store_true", help=_("Don't show a progress bar.")
        )
        signals = sub.add_parser(
            "signals",
            help=_("List every signal in the loaded modules and the receivers connected to it."),
            description=_(
                "List every django.dispatch.Signal bound at module level in the loaded "
                "modules, with each connected receiver: its name, where it is defined, "
                "the sender it listens to ('any' for all), whether Django holds it by a "
                "weak or a strong reference, and its dispatch_uid."
            ),
            epilog=_(
                "Examples: 'trail signals --signal post_save', "
                "'trail signals --json --signal django.contrib.auth.signals.user_logged_in'."
            ),
        )
        signals.add_argument(
            "--json", action="store_true", dest="as_json", help=_("Print JSON instead of tables.")
        )
        signals.add_argument(
            "--signal",
            action="append",
            dest="signal_names",
            metavar="NAME",
            help=_(
                "Only this signal: a dotted name (django.db.models.signals.post_save) or an "
                "unambiguous short one (post_save). Repeatable."
            ),
        )

        relay = sub.add_parser(
            "relay",
            help=_("Send the calls of @in_background receivers that are due (the outbox relay)."),
            description=_(
                "Send to the task backend every call of an @in_background receiver that "
                "is due: calls never handed over (the process died after the commit, or "
                "the backend was down), failed calls whose retry time came, and calls "
                "handed over or running for longer than SIGNALTRAIL['RELAY_TIMEOUT'] "
                "(presumed lost). Delivery is at least once. Runs until stopped by "
                "Ctrl-C or SIGTERM (it finishes the call it is sending), or with --once "
                "until nothing is due."
            ),
            epilog=_(
                "Examples: 'trail relay' (a long-running process next to your workers), "
                "'trail relay --once' (from cron), 'trail relay --once --grace 0' "
                "(send everything pending now)."
            ),
        )
        relay.add_argument(
            "--once",
            action="store_true",
            help=_("Send everything that is due, then exit."),
        )
        relay.add_argument(
            "--batch",
            type=int,
            default=100,
            metavar="N",
            help=_("Calls read per query (default: %(default)s)."),
        )
        relay.add_argument(
            "--interval",
            type=float,
            default=1.0,
            metavar="SECONDS",
            help=_("Seconds to wait between two passes (default: %(default)s)."),
        )
        relay.add_argument(
            "--grace",
            type=float,
            default=None,
            metavar="SECONDS",
            help=_(
                "Leave calls younger than this to the after-commit hand-over "
                "(default: SIGNALTRAIL['RELAY_GRACE'], 5)."
            ),
        )
        relay.add_argument(
            "--database",
            action="append",
            dest="databases",
            metavar="ALIAS",
            help=_(
                "Only this database alias (repeatable; default: every database "
                "signaltrail is migrated on)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        return getattr(self, f"handle_{options['subcommand']}")(**options)

    def handle_verify(self, database: str, no_progress: bool = False, **options: Any) -> None:
        from signaltrail.integrity import verify
        from signaltrail.models import Event

        if database not in connections:
            raise CommandError(
                _("Unknown database alias %(alias)r. Known: %(known)s.")
                % {"alias": database, "known": ", ".join(connections)}
            )
        total = Event.objects.using(database).count()
        problems = []
        console = Console(file=self.stderr._out, stderr=True)  # type: ignore[attr-defined]
        with Progress(
            TextColumn(_("Verifying events")),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=no_progress or not console.is_terminal,
            transient=True,
        ) as progress:
            task = progress.add_task("verify", total=total)
            for _pk, problem in verify(database):
                progress.advance(task)
                if problem is not None:
                    problems.append(problem)
        for problem in problems:
            self.stdout.write(self.style.ERROR(problem.message))
        if problems:
            raise CommandError(
                _("The trail was tampered with: %(n)d problem(s) in %(total)d events.")
                % {"n": len(problems), "total": total},
                returncode=1,
            )
        self.stdout.write(
            self.style.SUCCESS(
                _("The trail is intact: %(total)d events verified.") % {"total": total}
            )
        )

    def handle_signals(
        self, as_json: bool = False, signal_names: list[str] | None = None, **options: Any
    ) -> None:
        from signaltrail.toolkit import signalmap

        try:
            infos = signalmap.signal_map(signal_names)
        except LookupError as error:
            raise CommandError(error.args[0]) from None
        if as_json:
            self.stdout.write(signalmap.to_json(infos))
        else:
            signalmap.render(infos, self.stdout._out)  # type: ignore[attr-defined]

    def handle_relay(
        self,
        once: bool = False,
        batch: int = 100,
        interval: float = 1.0,
        grace: float | None = None,
        databases: list[str] | None = None,
        verbosity: int = 1,
        **options: Any,
    ) -> None:
        import threading

        from signaltrail.toolkit.background import relay

        if batch < 1:
            raise CommandError(_("--batch must be at least 1, not %(n)s.") % {"n": batch})
        if interval < 0 or (grace is not None and grace < 0):
            raise CommandError(_("--interval and --grace cannot be negative."))
        for alias in databases or ():
            if alias not in connections:
                raise CommandError(
                    _("Unknown database alias %(alias)r. Known: %(known)s.")
                    % {"alias": alias, "known": ", ".join(connections)}
                )
        dbs = databases or relay.databases()

        def out(line: str) -> None:
            if verbosity > 0:
                self.stdout.write(line)

        stop = threading.Event()
        if not once:
            out(
                _(
                    "Relaying background calls of %(dbs)s every %(interval)s s, up to "
                    "%(batch)d per query. Stop with Ctrl-C or SIGTERM."
                )
                % {"dbs": ", ".join(dbs), "interval": interval, "batch": batch}
            )

        def stopping(name: str) -> None:
            out(_("%(signal)s: stopping after the call being sent.") % {"signal": name})

        with relay.stop_on_signals(stop, stopping):
            report = relay.run(
                dbs, once=once, batch=batch, interval=interval, grace=grace, stop=stop, out=out
            )
        summary = _("Relay %(state)s: %(report)s.") % {
            "state": _("done") if once else _("stopped"),
            "report": report,
        }
        out(self.style.SUCCESS(summary) if not report.errors else self.style.WARNING(summary))
        if once and verbosity > 0:
            self._relay_backlog(relay, dbs)
        if report.errors:
            raise CommandError(
                _("Could not read the outbox of: %(dbs)s.") % {"dbs": "; ".join(report.errors)},
                returncode=1,
            )

    def _relay_backlog(self, relay: Any, dbs: list[str]) -> None:
        from django.db import DatabaseError

        for db in dbs:
            try:
                counts = relay.counts(db)
            except DatabaseError:
                continue
            if not counts:
                continue
            parts = ", ".join(
                _(_BACKLOG[status]) % {"n": n} if status in _BACKLOG else f"{n} {status}"
                for status, n in sorted(counts.items())
            )
            self.stdout.write(_("Outbox of %(db)s: %(parts)s.") % {"db": db, "parts": parts})
            if counts.get("dead"):
                self.stdout.write(
                    self.style.WARNING(
                        _(
                            "%(n)d dead letter(s) on %(db)s: retry or discard them in the "
                            "admin (Audit trail > Dead letters)."
                        )
                        % {"n": counts["dead"], "db": db}
                    )
                )
