"""The chaos run's section of BENCHMARKS.md (issue 13), written once for both bench/chaos.py
(which replaces the section in place after a run) and bench/report.py (which rewrites the whole
file from target/bench.json and appends this section when target/chaos.json exists)."""

HEADING = "## Chaos run (issue 13)"

# Columns of the status table, in this order; any other status found is added after them.
STATUS_ORDER = ["200", "201", "400", "401", "403", "404", "409", "429", "500", "502", "503", "504", "conn-error", "timeout"]


def _mark(ok):
    return "✓" if ok else "✗"


def _seconds(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f} s"


def _ms(value):
    return "—" if value is None else f"{value:.0f} ms"


def render(data):
    """The section as a list of lines (its heading first; sub-headings are ###, so the next ##
    heading ends it)."""
    m = data["machine"]
    lines = [HEADING, "",
             f"`{data['command']}` ({data['started_at']}): {data['seconds']:.0f} s of traffic from {data['threads']} client",
             f"threads (Python `http.client`, keep-alive, {data['client_timeout']:.0f} s timeout per request): "
             f"{data['mix']['threads']} of them send refresh",
             "chains on both surfaces, `/me`, member creates and reads, "
             f"{data['login_mix']['threads']} log in on both surfaces. brama runs on a",
             "PostgreSQL cluster and a Redis of the run's own; each is stopped and started again at random",
             "moments (PostgreSQL: `pg_ctl stop -m immediate`; Redis: SIGKILL, then a new `redis-server` on the",
             "same port). The machine's shared PostgreSQL and Redis are not touched. `CHAOS_SEED` repeats",
             "the schedule.", "",
             f"- Machine: {m['cpu']} ({m['cores']} cores; brama pinned to core {m['server_core']}, the load to core "
             f"{m['load_core']}, PostgreSQL and Redis not pinned), Linux {m['kernel']}",
             f"- {m['postgres']} (`fsync=off`: a killed server loses nothing the kernel already has), {m['redis']}, "
             f"Python {m['python']}",
             f"- brama: `{data['binary']}` at {data['commit']}; `database_timeout` = {data['database_timeout']:g} s; "
             f"seed {data['seed']}",
             ""]
    if data.get("note"):
        lines += [f"Note: {data['note']}", ""]

    # Requests by status.
    req = data["requests"]
    statuses = [s for s in STATUS_ORDER if s in req["by_status"]]
    statuses += sorted(s for s in req["by_status"] if s not in statuses)
    lines += ["### Requests by status", "",
              "| kind | requests | " + " | ".join(statuses) + " | p99 | longest |",
              "|---|---:|" + "---:|" * len(statuses) + "---:|---:|"]
    for kind, row in req["by_kind"].items():
        cells = [str(row["by_status"].get(s, 0)) if row["by_status"].get(s) else "" for s in statuses]
        lines.append(f"| {kind} | {row['total']} | " + " | ".join(cells) + f" | {_ms(row['p99_ms'])} | {_ms(row['max_ms'])} |")
    cells = [f"**{req['by_status'][s]}**" for s in statuses]
    lines.append(f"| **all** | **{req['total']}** | " + " | ".join(cells)
                 + f" | **{_ms(data['latency']['all']['p99_ms'])}** | **{_ms(data['latency']['all']['max_ms'])}** |")
    lines.append("")
    lat = data["latency"]
    slow = lat.get("slowest")
    lines += [f"Answer times: all requests p50 {_ms(lat['all']['p50_ms'])}, p99 {_ms(lat['all']['p99_ms'])}, longest "
              f"{_ms(lat['all']['max_ms'])}; during faults ({lat['during_faults']['count']} requests) p99 "
              f"{_ms(lat['during_faults']['p99_ms'])}, longest {_ms(lat['during_faults']['max_ms'])}; outside them p99 "
              f"{_ms(lat['outside_faults']['p99_ms'])}, longest {_ms(lat['outside_faults']['max_ms'])}."
              + (f" The longest answer: {slow['kind']} → {slow['status']} at t = {slow['start']:.2f} s." if slow else ""),
              ""]
    top = lat.get("slowest_10") or []
    if top:
        lines += ["The five longest answers:", "", "| kind | status | began at | took | nearest fault |", "|---|---|---:|---:|---|"]
        for r in top[:5]:
            f = r.get("fault")
            near = "—" if not f else (f"{f['dependency']}: {f['after_down_s']:+.2f} s from its stop"
                                      + (f", {f['after_up_s']:+.2f} s from its start" if f.get("after_up_s") is not None else ""))
            lines.append(f"| {r['kind']} | {r['status']} | {r['start']:.2f} s | {r['ms']:.0f} ms | {near} |")
        lines.append("")

    # Faults.
    lines += ["### Faults", "",
              "Times are seconds from the start of the load. *Back* is when `pg_ctl start -w` returned / Redis "
              "answered PING. *Recovered* is, for PostgreSQL, the end of the first 2xx answer to a request that "
              "reads or writes the database (login, refresh, member read or create) after it was back; for "
              "Redis, the first `/metrics` scrape (every 100 ms) showing `brama_redis_up 1` after it was back.", "",
              "| # | dependency | down at | back at | down for | answers meanwhile | brama noticed | recovered after |",
              "|---:|---|---:|---:|---:|---|---|---:|"]
    for n, f in enumerate(data["faults"], 1):
        during = ", ".join(f"{k}× {v}" for k, v in sorted(f["statuses_during"].items(), key=lambda kv: -kv[1])) or "—"
        if f["dependency"] == "postgres":
            noticed = (f"`/readyz` 503 after {_seconds(f['readyz_first_503_after'])}, its slowest answer "
                       f"{_ms(f['readyz_max_ms'])}" if f.get("readyz_first_503_after") is not None else "`/readyz` never said 503")
        else:
            noticed = (f"`brama_redis_up 0` after {_seconds(f['gauge_down_after'])}" if f.get("gauge_down_after") is not None
                       else "`brama_redis_up` stayed 1")
        recovered = f"**{_seconds(f['recovery_s'])}**"
        if f["dependency"] == "redis" and f.get("gauge_down_after") is None:
            recovered += " (never seen down: no Redis call while it was)"
        lines.append(f"| {n} | {f['dependency']} | {f['down_at']:.2f} | {_fmt_at(f['up_at'])} | {_seconds(f['down_for'], 1)} | "
                     f"{during} | {noticed} | {recovered} |")
    lines.append("")

    # Writes.
    w = data["writes"]
    lines += ["### Acknowledged writes", "",
              f"- Members created with 201: {w['members_acknowledged']}; read back by id after the run: "
              f"{w['members_acknowledged'] - w['members_lost']}, **lost {w['members_lost']}**. "
              f"Creates answered with an error: {w['member_creates_unacknowledged']}, of which stored anyway: "
              f"{w['members_stored_without_ack']} (not a loss; a client that retried would get `pesel` already in use).",
              f"- Refresh rotations answered 2xx: {w['refresh_rotations_acknowledged']} over {w['chains']} chains; "
              f"each chain's newest token refreshed once after the run: {w['chains_checked_ok']} worked, "
              f"**lost {w['chains_lost']}**"
              + (f" ({w['chains_lost_after_error_answer']} of them after an error answer to a rotation that had in fact happened)"
                 if w.get("chains_lost_after_error_answer") else "") + ".",
              f"- **Acknowledged writes lost: {w['lost']}**", ""]

    # Targets.
    lines += ["### Targets", "", "| target | measured | |", "|---|---|---|"]
    for t in data["targets"]:
        mark = _mark(t["ok"]) if t.get("gating", True) else ("✓" if t["ok"] else "✗") + " (SPEC §9, not gating)"
        lines.append(f"| {t['name']} | {t['value']} | {mark} |")
    lines.append("")
    if data.get("findings"):
        lines += ["### Findings", ""]
        lines += [f"- {f}" for f in data["findings"]]
    while lines[-1] == "":
        lines.pop()
    return lines


def _fmt_at(value):
    return "—" if value is None else f"{value:.2f}"


# Where bench/report.py puts the section, and so where it goes into a file that has none yet.
BEFORE = "## Commands"


def current_section(text):
    """The chaos section of `text` (BENCHMARKS.md) as it stands, or [] if it has none."""
    lines = text.rstrip("\n").split("\n") if text else []
    if HEADING not in lines:
        return []
    start = lines.index(HEADING)
    end = start + 1
    while end < len(lines) and not (lines[end].startswith("## ") or lines[end].startswith("# ")):
        end += 1
    section = lines[start:end]
    while section and section[-1] == "":
        section.pop()
    return section


def replace_section(text, section_lines):
    """`text` (BENCHMARKS.md) with its chaos section replaced by `section_lines`; a file without
    one gets it before its "## Commands" (where bench/report.py puts it), or at its end.
    Everything else is left as it was."""
    lines = text.rstrip("\n").split("\n") if text else []
    if HEADING in lines:
        start = lines.index(HEADING)
    elif BEFORE in lines:
        at = lines.index(BEFORE)
        return "\n".join(lines[:at] + section_lines + [""] + lines[at:]).rstrip("\n") + "\n"
    else:
        return "\n".join(lines + ([""] if lines else []) + section_lines).rstrip("\n") + "\n"
    end = start + 1
    while end < len(lines) and not (lines[end].startswith("## ") or lines[end].startswith("# ")):
        end += 1
    rest = lines[end:]
    new = lines[:start] + section_lines
    if rest:
        new = new + ([""] if new and new[-1] != "" else []) + rest
    return "\n".join(new).rstrip("\n") + "\n"
