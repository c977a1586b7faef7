"""Benchmark signaltrail against no auditing and the packages users pick instead.

Every contender runs in a worker process of its own (bench/worker.py) on a
database of its own, on the same server; repetitions are interleaved across
contenders (A rep 1, B rep 1, ..., A rep 2, ...), workload by workload, so that
a slow moment of the machine hits all of them. Reports the median, the ratio to `none` in the same
run and the audit rows each package wrote per affected row, then checks
signaltrail's targets. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import report  # noqa: E402
from databases import Unavailable, open_databases  # noqa: E402
from spec import ALIASES, CONTENDERS, WORKLOADS, sizes  # noqa: E402
from worker import Worker, WorkerError  # noqa: E402

DATABASES = ("sqlite", "postgres")
err = Console(stderr=True)


# -- command line -----------------------------------------------------------------


def _choices(kind: str, known: Any, aliases: dict[str, str] | None = None) -> Any:
    def parse(text: str) -> list[str]:
        names = []
        for raw in text.split(","):
            name = raw.strip()
            name = (aliases or {}).get(name, name)
            if name not in known:
                raise argparse.ArgumentTypeError(
                    f"unknown {kind} {raw.strip()!r} (choose from {', '.join(known)})"
                )
            if name not in names:
                names.append(name)
        return names

    return parse


def _positive(cast: Any, what: str) -> Any:
    def parse(text: str) -> Any:
        number = "a whole number" if cast is int else "a number"
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be {number}, got {text!r}") from None
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"{what} must be above 0 and finite, got {text!r}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    workloads = "\n".join(f"  {w.name:<14} {w.label}" for w in WORKLOADS.values())
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"workloads (N scales with --scale):\n{workloads}\n\n"
        "Query workloads run for signaltrail only, on a bench-only table of seeded events\n"
        "whose integrity hashes are fake. Output: a Markdown table on stdout and in\n"
        "OUT/latest.md, OUT/latest.json, OUT/ratios.png. PostgreSQL: SIGNALTRAIL_POSTGRES_URL\n"
        "if set (the bench creates and drops databases of its own), else a throw-away server.",
    )
    parser.add_argument(
        "--scale",
        type=_positive(float, "--scale"),
        default=1.0,
        help="multiply every size (1000 ops, 10,000 rows, 1,000,000 seeded "
        "events, 500 queries at 1); e.g. 0.01 for a smoke run (default 1)",
    )
    parser.add_argument(
        "--repeat",
        type=_positive(int, "--repeat"),
        default=5,
        help="repetitions per contender; the median is reported (default 5)",
    )
    parser.add_argument(
        "--db",
        type=_choices("database", DATABASES),
        default=list(DATABASES),
        help="comma-separated databases (default: sqlite,postgres)",
    )
    parser.add_argument(
        "--contenders",
        type=_choices("contender", CONTENDERS, ALIASES),
        default=list(CONTENDERS),
        help=f"comma-separated (default: {','.join(CONTENDERS)}); ratios need none",
    )
    parser.add_argument(
        "--workloads",
        type=_choices("workload", WORKLOADS),
        default=list(WORKLOADS),
        help="comma-separated (default: all, below)",
    )
    parser.add_argument(
        "--events",
        type=_positive(int, "--events"),
        default=None,
        help="size of the seeded event table, overriding --scale",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH / "results",
        help="directory for latest.md, latest.json and ratios.png (default bench/results)",
    )
    return parser.parse_args(argv)


def run_database(
    kind: str,
    args: argparse.Namespace,
    sz: dict[str, int],
    progress: Progress,
    skipped: list[dict[str, str]],
    logdir: Path,
) -> dict[str, Any] | None:
    def skip(contender: str, reason: str) -> None:
        skipped.append({"db": kind, "contender": contender, "reason": reason})
        err.print(f"[yellow]skipping {contender} on {kind}:[/] {reason}")

    runnable = []
    for name in args.contenders:
        contender = CONTENDERS[name]
        if contender.postgres_only and kind != "postgres":
            skip(name, "PostgreSQL only (triggers)")
        elif reason := contender.missing():
            skip(name, reason)
        else:
            runnable.append(name)
    if not runnable:
        return None
    try:
        dbs = open_databases(kind)
    except Unavailable as exc:
        for name in runnable:
            skip(name, f"{kind} unavailable: {exc}")
        return None
    workers: dict[str, Worker] = {}
    mine: dict[str, list[str]] = {}  # contender -> its workloads
    reps: dict[str, dict[str, list[dict[str, Any]]]] = {}  # contender -> workload -> runs
    try:
        for name in runnable:
            mine[name] = [
                w
                for w in args.workloads
                if name == "signaltrail" or not WORKLOADS[w].signaltrail_only
            ]
            trail = name == "signaltrail" and any(WORKLOADS[w].kind == "query" for w in mine[name])
            task = progress.add_task(
                f"{kind}: setting up {name}"
                + (f" (seeding {sz['events']:,} events)" if trail else ""),
                total=None,
            )
            worker = Worker(name, dbs.databases_for(name, trail), sz, mine[name], logdir / kind)
            try:
                worker.receive()
                workers[name], reps[name] = worker, {w: [] for w in mine[name]}
            except WorkerError as exc:
                worker.stop()
                skip(name, f"failed to set up: {exc}")
            progress.remove_task(task)
        # Interleaved finely: each workload runs for every contender in turn, so a
        # busy moment of the machine hits them all rather than one of them.
        total = args.repeat * sum(len(mine[n]) for n in workers)
        task = progress.add_task(f"{kind}: measuring", total=total)
        # Workloads only signaltrail runs (queries on a million-event table,
        # micro-benchmarks) come after every repetition of the shared ones:
        # run between them they would leave signaltrail's worker, alone, with
        # a cold cache for the next shared workload (the read of N rows).
        shared = [w for w in args.workloads if not WORKLOADS[w].signaltrail_only]
        only = [w for w in args.workloads if WORKLOADS[w].signaltrail_only]
        phases = [(rep, w) for rep in range(args.repeat) for w in shared]
        phases += [(rep, w) for rep in range(args.repeat) for w in only]
        for rep, workload in phases:
            for name, worker in list(workers.items()):
                if workload not in mine[name]:
                    continue
                progress.update(
                    task, description=f"{kind}: rep {rep + 1}/{args.repeat} {workload} {name}"
                )
                try:
                    reps[name][workload].append(worker.run(workload))
                except WorkerError as exc:
                    worker.stop()
                    del workers[name], reps[name]
                    skip(name, f"failed while measuring: {exc}")
                progress.advance(task)
        progress.remove_task(task)
    except BaseException:  # interrupted: don't wait for the runs in progress
        for worker in workers.values():
            worker.stop(kill=True)
        raise
    finally:
        for worker in workers.values():
            worker.stop()
        dbs.close()
    table: dict[str, dict[str, Any]] = {}
    for workload in args.workloads:
        per = {n: report.summarize(reps[n][workload]) for n in reps if workload in reps[n]}
        if per:
            table[workload] = per
    report.add_ratios(table)
    return {"note": dbs.note, "contenders": list(reps), "workloads": table}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sz = sizes(args.scale, args.events)
    try:  # now, rather than after a long run
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / ".write-test").touch()
        (args.out / ".write-test").unlink()
    except OSError as exc:
        err.print(f"[red]error:[/] --out {args.out}: {exc.strerror or exc}")
        return 2
    if "none" not in args.contenders:
        err.print("[yellow]note:[/] without `none` there are no ratios")
    import django

    meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "argv": sys.argv[1:] if argv is None else argv,
        "scale": args.scale,
        "repeat": args.repeat,
        "sizes": sz,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        "python": platform.python_version(),
        "django": django.get_version(),
        "versions": {n: CONTENDERS[n].version() for n in args.contenders if n != "none"},
    }
    run: dict[str, Any] = {"meta": meta, "databases": {}, "skipped": [], "targets": []}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        tempfile.TemporaryDirectory(prefix="signaltrail-bench-logs-") as logs,
        Progress(*columns, console=err) as progress,
    ):
        for kind in args.db:
            (Path(logs) / kind).mkdir()
            result = run_database(kind, args, sz, progress, run["skipped"], Path(logs))
            if result is not None:
                run["databases"][kind] = result
    run["targets"] = report.evaluate_targets(run)
    text = report.markdown(run)
    print(text)
    (args.out / "latest.md").write_text(text)
    (args.out / "latest.json").write_text(json.dumps(run, indent=2, default=str) + "\n")
    if why := report.chart(run, args.out / "ratios.png"):
        err.print(f"[yellow]no chart:[/] {why}")
    err.print(f"written: {args.out}/latest.md, latest.json" + ("" if why else ", ratios.png"))
    return 0 if run["databases"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        sys.exit(130)
