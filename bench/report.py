"""Turning raw repetitions into medians, ratios, tables, targets and a chart."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from spec import MICRO_BATCH, WORKLOADS

X = "\u00d7"  # the multiplication sign of "1.15x"
NOISY = 0.3  # repetitions further apart than this (relative to the median) are flagged


def summarize(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of the repetitions of one workload by one contender."""
    errors = [r["error"] for r in reps if "error" in r]
    if errors:
        return {"error": errors[0]}
    seconds = [r["seconds"] for r in reps]
    median = statistics.median(seconds)
    rows = reps[0]["rows"]
    events = statistics.median(r["events"] for r in reps)
    extra = {"micro": summarize_micro([r["micro"] for r in reps])} if "micro" in reps[0] else {}
    return {
        **extra,
        "median_s": median,
        "per_op_s": median / reps[0]["ops"],
        "ops": reps[0]["ops"],
        "rows": rows,
        "events": events,
        "events_per_row": events / rows if rows else 0.0,
        "runs_s": seconds,
        # (slowest - fastest) / median: how far apart the repetitions were.
        "spread": (max(seconds) - min(seconds)) / median if median else 0.0,
    }


def summarize_micro(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the batches of every repetition: operation -> medians and ratios.

    Each batch is ns per operation; the batches of index i ran in one round,
    back to back, so a ratio is the median of the rounds' ratios to the first
    variant (a slow moment of the machine hits every variant of a round), and
    the ns are the plain medians. "restored" (trace_off) says whether Django's
    own method was back in place after the blocks ended, in every repetition.
    """
    out: dict[str, Any] = {"ops": {}}
    if "restored" in runs[0]:
        out["restored"] = all(run["restored"] for run in runs)
    for op, first in runs[0]["ops"].items():
        states = {state: [x for run in runs for x in run["ops"][op][state]] for state in first}
        base_name = next(iter(states))
        base = states[base_name]
        out["ops"][op] = {
            **{f"{state}_ns": statistics.median(v) for state, v in states.items()},
            **{
                f"{state}_ratio": statistics.median(x / b for x, b in zip(v, base, strict=True))
                for state, v in states.items()
                if state != base_name
            },
            "rounds": len(base),
            "batch": MICRO_BATCH[op],
        }
    return out


MICRO_LABELS = {
    "send": "`Signal.send()` of a custom signal, 5 receivers",
    "save": "`save()` of an untracked model (in one transaction)",
    "read": "`list(qs)` of a tracked model, per row",
}


def add_ratios(table: dict[str, dict[str, Any]]) -> None:
    """table: workload -> contender -> summary; adds "ratio" to none's time."""
    for per_contender in table.values():
        base = per_contender.get("none", {}).get("median_s")
        for summary in per_contender.values():
            if base and "median_s" in summary:
                summary["ratio"] = summary["median_s"] / base


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def _size(workload: str, sizes: dict[str, int]) -> str:
    kind = WORKLOADS[workload].kind
    if kind == "single":
        return f"{sizes['ops']:,} ops"
    if kind == "bulk":
        return f"1 call, {sizes['rows']:,} rows"
    return f"{sizes['queries']:,} queries, {sizes['events']:,} events"


def _cell(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "-"
    if "error" in summary:
        return "error"
    parts = [fmt_time(summary["per_op_s"])]
    if summary.get("spread", 0) > NOISY:
        parts[0] += f" (±{summary['spread'] * 50:.0f}%)"
    if "ratio" in summary:
        parts.append(f"**{summary['ratio']:.2f}{X}**")
    parts.append(f"{summary['events_per_row']:g} ev/row")
    return " · ".join(parts)


def markdown(run: dict[str, Any]) -> str:
    meta = run["meta"]
    lines = [
        f"# signaltrail benchmark ({meta['date']})",
        "",
        f"scale {meta['scale']}, median of {meta['repeat']} repetitions (interleaved across "
        f"contenders), {meta['machine']}, Python {meta['python']}, Django {meta['django']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        "Each cell: time per op (per call for bulk rows) · **ratio to `none`** · audit rows "
        "written per affected row (0 = that path is not captured). (±N%): the repetitions "
        f"were spread over more than ±{NOISY * 50:.0f}% of the median; such ratios are noisy.",
    ]
    for db, result in run["databases"].items():
        contenders = result["contenders"]
        lines += ["", f"## {db}: {result['note']}"]
        compared = [n for n in result["workloads"] if not WORKLOADS[n].signaltrail_only]
        if compared:
            lines.append("")
            lines.append("| workload | size | " + " | ".join(contenders) + " |")
            lines.append("|---|---|" + "---|" * len(contenders))
        for name in compared:
            per = result["workloads"][name]
            cells = [_cell(per.get(c)) for c in contenders]
            lines.append(
                f"| {WORKLOADS[name].label} | {_size(name, meta['sizes'])} | "
                + " | ".join(cells)
                + " |"
            )
        queries = [n for n in result["workloads"] if WORKLOADS[n].kind == "query"]
        if queries and "signaltrail" in contenders:
            lines += ["", "| signaltrail query | size | time per query |", "|---|---|---|"]
            for name in queries:
                s = result["workloads"][name].get("signaltrail", {})
                value = fmt_time(s["per_op_s"]) if "per_op_s" in s else s.get("error", "-")
                size = _size(name, meta["sizes"])
                lines.append(f"| {WORKLOADS[name].label} | {size} | {value} |")
        lines += _read_hook_lines(db, result)
        lines += _micro_lines(db, result)
    if run["skipped"]:
        lines += ["", "Not run:"]
        lines += [f"- {s['contender']} on {s['db']}: {s['reason']}" for s in run["skipped"]]
    lines += ["", "## Targets", "", "```", *target_lines(run["targets"]), "```"]
    return "\n".join(lines) + "\n"


def _read_hook_lines(db: str, result: dict[str, Any]) -> list[str]:
    summary = result["workloads"].get("read_hook", {}).get("signaltrail")
    if summary is None:
        return []
    if "error" in summary:
        return ["", f"Reading, one process: error: {summary['error']}"]
    m = summary["micro"]["ops"]["read"]
    return [
        "",
        f"### {db}: reading, one process (signaltrail's `from_db` hook vs Django's own)",
        "",
        "| operation | Django's `from_db` | signaltrail's hook | ratio (median of rounds) |",
        "|---|---|---|---|",
        f"| {MICRO_LABELS['read']} | {m['django_ns']:,.0f} ns | {m['signaltrail_ns']:,.0f} ns "
        f"| **{m['signaltrail_ratio']:.3f}{X}** ({m['rounds']} rounds) |",
    ]


def _micro_lines(db: str, result: dict[str, Any]) -> list[str]:
    summary = result["workloads"].get("trace_off", {}).get("signaltrail")
    if summary is None:
        return []
    if "error" in summary:
        return ["", f"Tracing off: error: {summary['error']}"]
    micro = summary["micro"]
    restored = "yes" if micro["restored"] else "**no**"
    lines = [
        "",
        f"### {db}: dispatch outside any `trace()`/`muted()` block (same process, rotating rounds)",
        "",
        f"Django's own `Signal._live_receivers` back once the blocks ended: {restored}.",
        "",
        "| operation | before any block | after blocks ended | block open in another thread |",
        "|---|---|---|---|",
    ]
    for op, m in micro["ops"].items():
        lines.append(
            f"| {MICRO_LABELS.get(op, op)} | {m['before_ns']:,.0f} ns | "
            f"{m['after_ns']:,.0f} ns, **{m['after_ratio']:.3f}{X}** | "
            f"{m['elsewhere_ns']:,.0f} ns, {m['elsewhere_ratio']:.3f}{X} |"
        )
    if micro["ops"]:
        rounds = next(iter(micro["ops"].values()))["rounds"]
        batches = ", ".join(f"{op} {m['batch']}" for op, m in micro["ops"].items())
        lines += ["", f"Medians of {rounds} rounds, one batch per state (operations per "
                  f"batch: {batches}); ratios: median of each round's ratio to "
                  '"before".']  # fmt: skip
    return lines


# -- targets --------------------------------------------------------------------------


def _check(db: str, name: str, value: float | None, limit: float, unit: str,
           captured: bool | None, *notes: str) -> dict[str, Any]:  # fmt: skip
    """A target on a write path is only met when signaltrail writes its events there."""
    notes = tuple(n for n in notes if n)
    if value is None:
        status, notes = "n/a", notes or ("not measured in this run",)
    elif captured is False:
        status = "MISS"
        notes = ("signaltrail writes no event per row here (path not captured)", *notes)
    else:
        status = "PASS" if value <= limit else "MISS"
    shown = "-" if value is None else f"{value:.2f}{unit}"
    return {"db": db, "target": name, "value": value, "limit": limit, "shown": shown,
            "status": status, "note": "; ".join(notes)}  # fmt: skip


def evaluate_targets(run: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for db, result in run["databases"].items():
        out += _db_targets(db, result["workloads"])
    return out


def _db_targets(db: str, wl: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def get(workload: str, contender: str, key: str) -> Any:
        return wl.get(workload, {}).get(contender, {}).get(key)

    def captured(workload: str) -> bool | None:
        epr = get(workload, "signaltrail", "events_per_row")
        return None if epr is None else epr >= 1

    def noise(*pairs: tuple[str, str]) -> str:
        spread = max((get(w, c, "spread") or 0 for w, c in pairs), default=0)
        return f"noisy: repetitions ±{spread * 50:.0f}%" if spread > NOISY else ""

    def ratio_target(workload: str, limit: float, label: str) -> None:
        ratio = get(workload, "signaltrail", "ratio")
        out.append(_check(db, f"{label} ≤ {limit}{X} none", ratio, limit, X,
                          captured(workload) if WORKLOADS[workload].write else None,
                          noise((workload, "signaltrail"), (workload, "none"))))  # fmt: skip

    ratio_target("create", 1.3, "single save in autocommit: create()")
    ratio_target("save", 1.3, "single save in autocommit: load-change-save()")
    ratio_target("save_txn", 1.6, "load-change-save() in one transaction")
    ratio_target("bulk_create", 2.2, "bulk_create, one event per row")
    upd = get("qs_update", "signaltrail", "median_s")
    for other, limit, label in (
        ("none", 1.5, f"QuerySet.update ≤ 1.5{X} a plain bulk_create (none)"),
        ("pghistory", 1.0, "QuerySet.update no slower than pghistory's"),
    ):
        if other == "pghistory" and db != "postgres":
            continue
        workload = "bulk_create" if other == "none" else "qs_update"
        base = get(workload, other, "median_s")
        out.append(_check(db, label, upd / base if upd and base else None, limit, X,
                          captured("qs_update"),
                          noise(("qs_update", "signaltrail"), (workload, other))))  # fmt: skip
    ratio_target("read", 1.05, "read N rows")
    idle = [f"{c} {r:.2f}{X}" for c in ("auditlog", "simple_history", "pghistory")
            if (r := get("read", c, "ratio")) is not None]  # fmt: skip
    if idle and out[-1]["value"] is not None:
        note = "across processes; packages that do nothing on reads: " + ", ".join(idle)
        out[-1]["note"] = "; ".join(n for n in (out[-1]["note"], note) if n)
    hook = wl.get("read_hook", {}).get("signaltrail", {}).get("micro", {}).get("ops", {})
    out.append(_check(db, f"read N rows ≤ 1.05{X}, one process: from_db hook vs Django's",
                      hook.get("read", {}).get("signaltrail_ratio"), 1.05, X, None))  # fmt: skip
    micro = wl.get("trace_off", {}).get("signaltrail", {}).get("micro", {})
    for op, label in (("send", "Signal.send()"), ("save", "untracked save()")):
        ratio = micro.get("ops", {}).get(op, {}).get("after_ratio")
        note = "" if micro.get("restored", True) else "the hook was left installed"
        out.append(_check(db, f"tracing off ≤ 1.02{X} before any block: {label}",
                          ratio, 1.02, X, None, note))  # fmt: skip
    for workload in (w for w in wl if WORKLOADS[w].write):
        st, al = get(workload, "signaltrail", "ratio"), get(workload, "auditlog", "ratio")
        value, note = None, ""
        events = get(workload, "auditlog", "events_per_row")
        if events == 0:
            # auditlog records nothing on this path: there is no overhead of
            # auditing to compare with, only the absence of a trail.
            note = f"auditlog records nothing here ({events:g} ev/row): nothing to compare"
        elif st is not None and al is not None:
            if al > 1:
                value = (st - 1) / (al - 1)
            else:  # auditlog costs nothing here: any overhead is more than half of it
                value = float("inf") if st > 1 else 0.0
                note = f"auditlog adds no time here ({al:.2f}{X}, {events:g} ev/row)"
        pairs = ((workload, "signaltrail"), (workload, "auditlog"), (workload, "none"))
        out.append(_check(db, f"{WORKLOADS[workload].label}: overhead ≤ ½ auditlog's",
                          value, 0.5, f"{X} of auditlog's", captured(workload), note,
                          noise(*pairs)))  # fmt: skip
    return out


def target_lines(targets: list[dict[str, Any]]) -> list[str]:
    lines = []
    for t in targets:
        line = f"{t['status']:<4}  {t['db']:<8} {t['target']}: {t['shown']} (limit {t['limit']:g})"
        lines.append(line + (f"  [{t['note']}]" if t["note"] else ""))
    return lines


# -- chart ------------------------------------------------------------------------------


def chart(run: dict[str, Any], path: Path) -> str | None:
    """Bars of ratio to none; returns why no chart was drawn, or None."""
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed (install the bench group)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dbs = list(run["databases"].items())
    if not dbs:
        return "no database was measured"
    fig, axes = plt.subplots(len(dbs), 1, figsize=(12, 4.5 * len(dbs)), squeeze=False)
    for ax, (db, result) in zip(axes[:, 0], dbs, strict=True):
        names = [n for n in result["workloads"] if not WORKLOADS[n].signaltrail_only]
        contenders = [c for c in result["contenders"] if c != "none"]
        width = 0.8 / max(1, len(contenders))
        for i, contender in enumerate(contenders):
            found = [result["workloads"][n].get(contender, {}) for n in names]
            xs = [j + (i - (len(contenders) - 1) / 2) * width for j in range(len(names))]
            bars = ax.bar(xs, [s.get("ratio", 0) for s in found], width, label=contender)
            for bar, name, s in zip(bars, names, found, strict=True):
                if WORKLOADS[name].write and s.get("events_per_row", 1) < 1:
                    bar.set_hatch("///")  # wrote no audit rows: cheap because it does nothing
                    bar.set_alpha(0.45)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(names)), names, rotation=20)
        ax.set_ylabel("time / time of none (log)")
        ax.set_yscale("log")
        ax.set_title(f"{db}: {result['note']}; hatched: no audit row written", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
