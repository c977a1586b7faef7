"""Run the web server and the background processes together; Ctrl-C stops them all."""

import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

# What runs next to the web server: the task worker of django-tasks-db, which
# runs the @in_background receivers' calls (the emails), and signaltrail's
# outbox relay, which sends again any call the web process could not hand
# over after its commit.
BACKGROUND = {
    "worker": ["db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.5"],
    "relay": ["trail", "relay"],
}


class Command(BaseCommand):
    help = (
        "Start the background worker (django-tasks-db's db_worker), signaltrail's outbox "
        "relay and the development web server. Ctrl-C stops them all."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args, addrport, **options):
        # Ctrl-C must stop the server even if this process was started with
        # SIGINT ignored (as a shell's background job is); SIGTERM too.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        processes = {}
        try:
            for name, command in BACKGROUND.items():
                processes[name] = subprocess.Popen([*manage, *command])
                self.stdout.write(f"Background {name} started (pid {processes[name].pid}).")
            self.stdout.flush()
            call_command("runserver", addrport, use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            for process in processes.values():
                stop(process)
            self.stdout.write("Web server and background processes stopped.")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stop(process, timeout=10):
    """Ask the process to finish what it is doing and exit; kill it if it won't."""
    if process.poll() is None:
        # Ctrl-C in a terminal already sent SIGINT to the whole process
        # group; this covers a SIGTERM or a stop from elsewhere.
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
