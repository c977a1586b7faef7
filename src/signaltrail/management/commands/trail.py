"""``manage.py trail``: work with the audit trail from the command line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils.translation import gettext as _
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Command(BaseCommand):
    help = _(
        "Work with the audit trail. Subcommands: 'verify' checks that no event was "
        "edited, inserted, deleted or reordered outside signaltrail; 'signals' lists "
        "signals and their receivers."
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
