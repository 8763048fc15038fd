#!/usr/bin/env python3
"""brama's benchmark: builds release, runs brama pinned to core 0 (SQLite, then PostgreSQL),
drives it with wrk pinned to core 1, and writes BENCHMARKS.md. One command: `bench/run`.

While working on one figure (BENCHMARKS.md is then left alone and the figures only printed):
  BENCH_BACKENDS=sqlite          run one backend (comma-separated: sqlite,postgres)
  BENCH_ONLY=refresh,members_search   run only these scenarios (refresh_janitor: refresh while the
                                 janitor deletes a backlog, against a server whose janitor has nothing to do, 4 rounds)
  BENCH_PERF=1                   build `--profile profiling` (line tables) and record each
                                 scenario with `perf record --call-graph dwarf` into target/perf-<backend>-<scenario>.data
  BENCH_BIN=path/to/brama        run that binary instead of building brama (to compare two builds
                                 in one window: run each in turn; BENCHMARKS.md is left alone; the
                                 login scenario still measures the raw hash rate with cargo bench)
  BENCH_MEMBERS=100000           the register's size (default a million, issue 18)
  BENCH_ROUNDS=3                 rounds of the hello, `/healthz` and `/me` in turn (each figure its median round)

The yardstick (issue 18) is a bare axum "hello" (bench/hello.rs, `cargo build --release --example
hello`), on brama's core beside it, measured in turn with `/healthz` and `/me` (BENCH_ROUNDS), per
backend. brama runs with its default log level (an access line per request), its log going to a
file in its data directory.
"""
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PERF = os.environ.get("BENCH_PERF") == "1"
BIN = os.path.abspath(os.environ.get("BENCH_BIN") or os.path.join(ROOT, "target", "profiling" if PERF else "release", "brama"))
HELLO = os.path.join(ROOT, "target", "profiling" if PERF else "release", "examples", "hello")
BACKENDS = os.environ.get("BENCH_BACKENDS", "sqlite,postgres").split(",")
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
PASSWORD = "Zx8!quokka"
DURATION = os.environ.get("BENCH_DURATION", "10s")
PG_ADMIN = os.environ.get("BRAMA_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
MEMBERS = int(os.environ.get("BENCH_MEMBERS", "1000000"))
# Rounds of the hello, `/healthz` and `/me` in turn; each figure is its median round.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# Scenarios that need the imported register.
MEMBER_SCENARIOS = ["members_list", "members_search", "member_read", "members_export", "member_create"]
SERVER_CORE, LOAD_CORE = "0", "1"


def sh(cmd, **kw):
    print("+", cmd if isinstance(cmd, str) else " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(base, method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("x-access-token", token)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"{}")


def browser_login(base, username):
    """A login in browser mode (the CSRF pair, then the login), as brama's page does it: the
    value of the SSO cookie it sets (SPEC §14)."""
    import http.client
    connection = http.client.HTTPConnection(base.split("//", 1)[1], timeout=60)
    connection.request("GET", "/api/auth/csrf")
    r = connection.getresponse()
    pair = json.loads(r.read())
    csrf_cookie = next(v for k, v in r.getheaders() if k.lower() == "set-cookie" and v.startswith("sessionToken=")).split(";")[0]
    connection.request("POST", "/api/auth/login", body=json.dumps({"username": username, "password": PASSWORD}),
                       headers={"content-type": "application/json", "sessionId": pair["sessionId"], "cookie": csrf_cookie})
    r = connection.getresponse()
    r.read()
    sso = next(v for k, v in r.getheaders() if k.lower() == "set-cookie" and v.startswith("brama_sso="))
    return sso.split(";")[0].split("=", 1)[1]


def oidc_grant(base, client_id, basic, sso, scope):
    """One authorization of a first-party client from a signed-in browser, and its code's
    exchange: the token answer."""
    import http.client
    import urllib.parse
    connection = http.client.HTTPConnection(base.split("//", 1)[1], timeout=60)
    redirect = "https://rp.example.org/cb"
    query = urllib.parse.urlencode({"client_id": client_id, "redirect_uri": redirect, "response_type": "code", "scope": scope})
    connection.request("GET", f"/oauth2/authorize?{query}", headers={"cookie": f"brama_sso={sso}"})
    r = connection.getresponse()
    r.read()
    code = urllib.parse.parse_qs(urllib.parse.urlparse(r.getheader("location")).query)["code"][0]
    form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect})
    connection.request("POST", "/oauth2/token", body=form,
                       headers={"content-type": "application/x-www-form-urlencoded", "authorization": f"Basic {basic}"})
    r = connection.getresponse()
    return json.loads(r.read())


def server_env(data_dir, port, database_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAMA_")}
    env.update({
        "BRAMA_DATA_DIR": data_dir, "BRAMA_LISTEN": f"127.0.0.1:{port}",
        # Limits out of the way: the benchmark measures work, not refusals.
        "BRAMA_FAILED_LOGINS_PER_ACCOUNT": "100000000", "BRAMA_FAILED_LOGINS_PER_IP": "100000000",
        "BRAMA_REGISTRATIONS_PER_IP_PER_HOUR": "100000000", "BRAMA_HASH_QUEUE": "4096",
        "BRAMA_ACCESS_TOKEN_MINUTES": "15",
    })
    if database_url:
        env["BRAMA_DATABASE_URL"] = database_url
    return env


def export_once(base, token, fmt, pid):
    """One whole-register export: its time, size, and the server's peak memory during it."""
    reset_peak(pid)
    req = urllib.request.Request(f"{base}/api/membership/members/export.{fmt}")
    req.add_header("x-access-token", token)
    t0 = time.time()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            size = len(r.read())
    except urllib.error.HTTPError as e:
        # A refused export is a finding for the report, not the end of the run.
        return {"seconds": time.time() - t0, "failed": f"HTTP {e.code} {e.read().decode(errors='replace')[:200]}"}
    seconds = time.time() - t0
    with open(f"/proc/{pid}/status") as f:
        peak_kib = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    return {"seconds": seconds, "bytes": size, "peak_rss_mib": peak_kib / 1024}


def memory(pid):
    """The process's resident memory now and at its peak since the last `reset_peak`, in MiB:
    {"rss", "peak", "anon", "file"} (file: pages of files it maps, SQLite's database with mmap)."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) / 1024
    return {"rss": fields["VmRSS"], "peak": fields["VmHWM"], "anon": fields.get("RssAnon", 0), "file": fields.get("RssFile", 0)}


def reset_peak(pid):
    """Starts a new peak (VmHWM) for `memory`: writing 5 to clear_refs resets it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def cpu_seconds(pid):
    """User + system CPU time of a process and all its threads so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wanted(scenario):
    return not ONLY or scenario in ONLY


def wrk(script, url, connections, extra_env=None, duration=DURATION, perf=None):
    env = dict(os.environ, **(extra_env or {}))
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration}", "--latency", "-s", script, url]
    recorder = None
    cpu_before = cpu_seconds(perf[0]) if perf else None
    if perf:
        reset_peak(perf[0])
    if PERF and perf:
        pid, name = perf
        recorder = subprocess.Popen(["perf", "record", "-q", "--call-graph", "dwarf,16384", "-F", "499", "-p", str(pid), "-o",
                                     os.path.join(ROOT, "target", f"perf-{name}.data")], cwd=ROOT)
    started = time.strftime("%H:%M:%S", time.gmtime())
    out = subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True, text=True).stdout
    if recorder:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    # A script that mixes kinds of requests says how many of each (oidc_code).
    for l in out.splitlines():
        if l.startswith("COUNTS "):
            result.update(json.loads(l[len("COUNTS "):]))
    result["command"] = " ".join(cmd)
    # When it ran (UTC, as the server's log): to find a scenario's slow lines (keep_slow_lines).
    result["started"] = started
    if perf:
        # CPU the server spent per request: steadier than requests/s on a shared machine,
        # where another tenant's load lowers throughput but not the work each request does.
        requests = result["requests"] or 1
        result["server_cpu_us"] = (cpu_seconds(perf[0]) - cpu_before) / requests * 1e6
        result["memory"] = memory(perf[0])
    return result


def start_hello():
    """The bare axum hello on brama's core, the yardstick of issue 18: its process and port."""
    port = free_port()
    hello = subprocess.Popen(["taskset", "-c", SERVER_CORE, HELLO, f"127.0.0.1:{port}"], cwd=ROOT)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
            break
        except OSError:
            time.sleep(0.05)
    return hello, port


def median_round(rounds):
    """Of a scenario's rounds, the one with the median requests/s, with every round's rate."""
    chosen = dict(sorted(rounds, key=lambda r: r["rps"])[len(rounds) // 2])
    chosen["rounds_rps"] = [r["rps"] for r in rounds]
    return chosen


def bench_backend(name, database_url, tokens_users=64):
    data_dir = tempfile.mkdtemp(prefix=f"brama-bench-{name}-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = server_env(data_dir, port, database_url)
    # 100 000 members, imported before the server starts (the owner account comes first).
    sh([BIN, "user", "create", "--username", "bench", "--email", "bench@example.org", "--role", "owner"],
       input=PASSWORD + "\n", text=True, env=env)
    results = {"members": MEMBERS}
    if any(wanted(s) for s in MEMBER_SCENARIOS):
        members_csv = os.path.join(data_dir, "members.csv")
        with open(members_csv, "w") as f:
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "seed_members.py"), str(MEMBERS)], check=True, stdout=f)
        t0 = time.time()
        sh([BIN, "members", "import", members_csv], env=env, stdout=subprocess.DEVNULL)
        results["import_seconds"] = time.time() - t0
        if database_url:
            # After a million rows PostgreSQL's autovacuum would read the whole table while the
            # first scenarios run (the refresh figures of the first run at a million fell by
            # half on PostgreSQL alone; suspected, not yet shown): do it now, outside them. Also
            # the narrow `member_search` of migration 0021 (its first searches set the hint bits
            # of a million fresh rows otherwise), where the build has it; not the small tables
            # of the auth scenarios, whose statistics would then say "empty".
            sh(["psql", database_url, "-qc", "VACUUM (ANALYZE) members"])
            subprocess.run(["psql", database_url, "-qc", "VACUUM (ANALYZE) member_search"], stderr=subprocess.DEVNULL)
    # The hello idles beside brama on its core until its rounds (below).
    hello = start_hello() if wanted("hello") else None
    # brama's log (an access line per request at the default level) goes to a file, as it would
    # to a journal or a log collector; never to this terminal.
    log = open(os.path.join(data_dir, "brama.log"), "w")
    server = subprocess.Popen(["taskset", "-c", SERVER_CORE, BIN, "serve"], cwd=ROOT, env=env, stderr=log)

    def run(scenario, script, url, connections, extra_env=None):
        if wanted(scenario):
            results[scenario] = wrk(script, url, connections, extra_env, perf=(server.pid, f"{name}-{scenario}"))
    try:
        for _ in range(200):
            try:
                call(base, "GET", "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        # Idle, right after start-up (before the first login, which makes the hashing thread's
        # memory resident until it idles).
        time.sleep(1)
        results["memory_idle_start"] = memory(server.pid)
        owner = call(base, "POST", "/api/auth/login", {"username": "bench", "password": PASSWORD})["accessToken"]
        # The per-request scenarios and the hello in turn, BENCH_ROUNDS times: this machine's
        # speed drifts by the minute (the hello alone has measured 107 000 and 135 000/s ten
        # minutes apart), so each ratio compares the median rounds of one stretch of time.
        per_request = {"hello": [], "healthz": [], "me": []}
        for _ in range(ROUNDS):
            if hello:
                per_request["hello"].append(wrk("bench/lua/report.lua", f"http://127.0.0.1:{hello[1]}/", 64,
                                                perf=(hello[0].pid, f"{name}-hello")))
            if wanted("healthz"):
                per_request["healthz"].append(wrk("bench/lua/report.lua", base + "/healthz", 64,
                                                  perf=(server.pid, f"{name}-healthz")))
            if wanted("me"):
                per_request["me"].append(wrk("bench/lua/me.lua", base + "/api/auth/me", 64, {"BRAMA_TOKEN": owner},
                                             perf=(server.pid, f"{name}-me")))
        for scenario, rounds in per_request.items():
            if rounds:
                results[scenario] = median_round(rounds)
        if hello:
            hello[0].send_signal(signal.SIGTERM)
            hello[0].wait(timeout=30)
        if wanted("refresh"):
            # Refresh chains: one account per connection (one session each, the default).
            tokens_file = os.path.join(data_dir, "tokens.txt")
            with open(tokens_file, "w") as f:
                # One more than connections: wrk calls request() once to check the script.
                for i in range(tokens_users + 1):
                    user = f"chain{i}"
                    call(base, "POST", "/api/auth/register", {"username": user, "email": f"{user}@example.org", "password": PASSWORD})
                    f.write(call(base, "POST", "/api/auth/login", {"username": user, "password": PASSWORD})["refreshToken"] + "\n")
            run("refresh", "bench/lua/refresh.lua", base + "/", tokens_users, {"BRAMA_TOKENS_FILE": tokens_file, "BRAMA_THREADS": "1"})
        if any(wanted(s) for s in ("oidc_authorize", "oidc_code", "oidc_code_eddsa", "oidc_refresh")):
            # SPEC §14: a first-party client, and a person signed in on brama's page in a browser.
            import base64
            client = call(base, "POST", "/api/admin/oidc-clients",
                          {"name": "bench", "redirect_uris": ["https://rp.example.org/cb"], "first_party": True}, token=owner)
            basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
            call(base, "POST", "/api/auth/register", {"username": "sso", "email": "sso@example.org", "password": PASSWORD})
            sso = browser_login(base, "sso")
            oidc_env = {"BRAMA_CLIENT": client["client_id"], "BRAMA_BASIC": basic, "BRAMA_SSO": sso}
            def exchanges(scenario, client_env, report_authorize):
                # Codes from a run of authorizations (reported as oidc_authorize for the first
                # client), then each exchanged once: the exchange's own figures, with no
                # authorizations mixed in. Codes live 60 s; the two runs take at most twice
                # BENCH_DURATION.
                codes = os.path.join(data_dir, f"codes-{scenario}.txt")
                open(codes, "w").close()
                env = dict(client_env, BRAMA_CODES_FILE=codes)
                if report_authorize:
                    results["oidc_authorize"] = wrk("bench/lua/oidc_authorize.lua", base + "/", tokens_users, env,
                                                    perf=(server.pid, f"{name}-oidc_authorize"))
                else:
                    wrk("bench/lua/oidc_authorize.lua", base + "/", tokens_users, env)
                run(scenario, "bench/lua/oidc_exchange.lua", base + "/", tokens_users, env)
                if scenario in results:
                    with open(codes) as f:
                        results[scenario]["codes"] = sum(1 for _ in f)
            if wanted("oidc_authorize") or wanted("oidc_code"):
                exchanges("oidc_code", oidc_env, wanted("oidc_authorize"))
            if wanted("oidc_code_eddsa"):
                # The same with a client whose ID tokens are EdDSA: what RS256's RSA signature costs.
                eddsa = call(base, "POST", "/api/admin/oidc-clients",
                             {"name": "bench-eddsa", "redirect_uris": ["https://rp.example.org/cb"], "first_party": True,
                              "id_token_alg": "EdDSA"}, token=owner)
                eddsa_basic = base64.b64encode(f"{eddsa['client_id']}:{eddsa['client_secret']}".encode()).decode()
                exchanges("oidc_code_eddsa", dict(oidc_env, BRAMA_CLIENT=eddsa["client_id"], BRAMA_BASIC=eddsa_basic), False)
            if wanted("oidc_refresh"):
                grants_file = os.path.join(data_dir, "grants.txt")
                with open(grants_file, "w") as f:
                    for _ in range(tokens_users + 1):
                        f.write(oidc_grant(base, client["client_id"], basic, sso, "openid offline_access")["refresh_token"] + "\n")
                run("oidc_refresh", "bench/lua/oidc_refresh.lua", base + "/", tokens_users,
                    dict(oidc_env, BRAMA_TOKENS_FILE=grants_file))
        if wanted("login"):
            # The raw hash rate right before login, on the same core while brama idles: this
            # machine's speed drifts over minutes, so the two figures must be taken together.
            results["argon2"] = hash_rate()
        run("login", "bench/lua/login.lua", base + "/api/auth/login", 8)
        owner = call(base, "POST", "/api/auth/login", {"username": "bench", "password": PASSWORD})["accessToken"]
        # A register is searched by a few people at a time: four concurrent clients.
        run("members_list", "bench/lua/members.lua", base + "/", 4, {"BRAMA_TOKEN": owner})
        run("members_search", "bench/lua/members.lua", base + "/", 4, {"BRAMA_TOKEN": owner, "BRAMA_SEARCH": "1"})
        if wanted("member_read"):
            # 1 000 members spread over the register, each read whole in turn: a page of 50
            # hits of 20 searches for a surname and a two-digit number (seed_members.py gives
            # each pair to every 1 940th member, about 515 at a million; hits of a name come in
            # the order they were added, so page i + 1 of 10 lies in the (i + 1)th tenth). Offset
            # pages cannot reach there: a page deep in a million members is a walk past every
            # row before it, which PostgreSQL does not finish within `database_timeout` (503).
            ids_file = os.path.join(data_dir, "ids.txt")
            surnames = ["kowalski", "nowak", "wisniewski", "wojcik", "kaminski", "lewandowski", "zielinski",
                        "szymanski", "wozniak", "dabrowski", "kozlowski", "jankowski", "mazur", "kwiatkowski",
                        "krawczyk", "piotrowski", "grabowski", "nowakowski", "pawlowski", "michalski"]
            with open(ids_file, "w") as f:
                for i, surname in enumerate(surnames):
                    for m in call(base, "GET", f"/api/membership/members?q={surname}{i + 10}&page={i % 10 + 1}&limit=50", token=owner):
                        f.write(m["_id"] + "\n")
            run("member_read", "bench/lua/member_read.lua", base + "/", 4, {"BRAMA_TOKEN": owner, "BRAMA_IDS_FILE": ids_file})
        if wanted("members_export"):
            results["members_export"] = {fmt: export_once(base, owner, fmt, server.pid) for fmt in ("csv", "xlsx")}
        run("member_create", "bench/lua/member_create.lua", base + "/", 4, {"BRAMA_TOKEN": owner})
        if wanted("me_during_login_flood"):
            # /me while a login flood keeps the hashing thread busy.
            call(base, "POST", "/api/auth/register", {"username": "flood", "email": "flood@example.org", "password": PASSWORD})
            me_token = call(base, "POST", "/api/auth/login", {"username": "flood", "password": PASSWORD})["accessToken"]
            flood = subprocess.Popen(["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c32", "-d14s", "-s", "bench/lua/login.lua",
                                      base + "/api/auth/login"], cwd=ROOT, stdout=subprocess.DEVNULL)
            time.sleep(2)
            run("me_during_login_flood", "bench/lua/me.lua", base + "/api/auth/me", 16, {"BRAMA_TOKEN": me_token})
            flood.wait()
            run("me_idle_16", "bench/lua/me.lua", base + "/api/auth/me", 16, {"BRAMA_TOKEN": me_token})
        # After the whole benchmark, once the hashing threads have been idle long enough to give
        # their argon2 memory back (RELEASE_AFTER, 2 s) and the server has trimmed its heap
        # since (HEAP_TRIM_INTERVAL, every 10 s).
        time.sleep(12)
        results["memory_end"] = memory(server.pid)
    finally:
        if hello and hello[0].poll() is None:
            hello[0].send_signal(signal.SIGTERM)
            hello[0].wait(timeout=30)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        keep_slow_lines(os.path.join(data_dir, "brama.log"), name)
        shutil.rmtree(data_dir, ignore_errors=True)
    return results


def keep_slow_lines(log, name, slow_ms=20):
    """Keeps, of the server's log, every line that is not an access line and every access line
    of a request that took `slow_ms` or more, in target/bench-<backend>-slow.log: wrk's p99 is
    corrected for coordinated omission (a request that stalls S ms adds about S divided by the
    mean interval of a connection of samples below it), so one stall of a few hundred
    milliseconds is the p99 of a ten-second run, and this says when it was and what else the
    server logged then."""
    slow = re.compile(r"latency_ms=(\d+)")
    with open(log, errors="replace") as src, open(os.path.join(ROOT, "target", f"bench-{name}-slow.log"), "w") as out:
        for line in src:
            m = slow.search(line)
            if not m or int(m.group(1)) >= slow_ms:
                out.write(line)


def metric_sum(base, name):
    """The sum of every series of a counter on /metrics (0 before its first increment)."""
    with urllib.request.urlopen(base + "/metrics", timeout=60) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


# The backlog of one janitor round: sessions that ended long ago with their used refresh tokens,
# and audit events past their retention, as an older version (which deleted nothing) left them.
# Enough that the janitor, which rests 49 times as long as each batch takes, is still at it when
# the run ends.
JANITOR_SESSIONS = int(os.environ.get("BENCH_JANITOR_SESSIONS", "500"))
JANITOR_TOKENS = int(os.environ.get("BENCH_JANITOR_TOKENS", "150000"))
JANITOR_EVENTS = int(os.environ.get("BENCH_JANITOR_EVENTS", "20000"))


def janitor_sql(data_dir, database_url, statements):
    """Runs the statements, then settles the database (a checkpoint, or VACUUM ANALYZE), so that
    the server that starts next does not pay for the writes."""
    tables = ["sessions", "refresh_tokens", "audit_events"]
    if database_url:
        for statement in statements + [f"VACUUM ANALYZE {t}" for t in tables]:
            subprocess.run(["psql", database_url, "-qc", statement], check=True)
    else:
        import sqlite3
        db = sqlite3.connect(os.path.join(data_dir, "brama.db"))
        for statement in statements:
            db.execute(statement)
        db.commit()
        for t in tables:
            db.execute(f"ANALYZE {t}")
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()


def seed_backlog(data_dir, database_url, tag, litter):
    """Writes the backlog with SQL that SQLite and PostgreSQL read alike; ids start with `tag`.
    With `litter` false, the same rows are still of use (live sessions, recent audit events), so
    that a server with nothing to delete runs on a database of the same size."""
    def numbers(n):
        return f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) "
    now = int(time.time() * 1000)
    expires, revoked, reason, created = (9000, "2000", "'logout'", 1000) if litter else (now + 30 * 86400_000, "NULL", "NULL", now)
    janitor_sql(data_dir, database_url, [
        numbers(JANITOR_SESSIONS) + "INSERT INTO sessions (id, account_id, created_at, last_used_at, expires_at, "
        f"revoked_at, revoke_reason) SELECT '{tag}s' || i, (SELECT MIN(id) FROM accounts), {created}, {created}, {expires}, "
        f"{revoked}, {reason} FROM n",
        numbers(JANITOR_TOKENS) + "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, used_at) "
        f"SELECT '{tag}t' || i, '{tag}s' || (1 + i % {JANITOR_SESSIONS}), {created}, {expires}, {created} FROM n",
        numbers(JANITOR_EVENTS) + f"INSERT INTO audit_events (id, action, created_at) SELECT '{tag}a' || i, 'account.login', {created} FROM n",
    ])
    return JANITOR_SESSIONS + JANITOR_TOKENS + JANITOR_EVENTS


def clear_backlog(data_dir, database_url, tag):
    """Deletes what is left of a round's backlog (with the server stopped)."""
    janitor_sql(data_dir, database_url, [
        f"DELETE FROM refresh_tokens WHERE token_hash LIKE '{tag}t%'",
        f"DELETE FROM sessions WHERE id LIKE '{tag}s%'",
        f"DELETE FROM audit_events WHERE id LIKE '{tag}a%'",
    ])


def bench_janitor(name, database_url, rounds=4, connections=64):
    """Refresh chains on a server whose janitor is deleting a backlog ("busy"), against the same
    on a server with as many rows but nothing to delete ("idle"), `rounds` times, alternating
    which comes first. Each run gets a freshly started server (the janitor's first pass begins
    2 s after start-up)."""
    data_dir = tempfile.mkdtemp(prefix=f"brama-janitor-{name}-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = server_env(data_dir, port, database_url)
    sh([BIN, "migrate"], env=env, stdout=subprocess.DEVNULL)
    users = [f"chain{i}" for i in range(connections + 1)]
    tokens_file = os.path.join(data_dir, "tokens.txt")
    server = None

    log = open(os.path.join(data_dir, "brama.log"), "w")

    def start():
        process = subprocess.Popen(["taskset", "-c", SERVER_CORE, BIN, "serve"], cwd=ROOT, env=env, stderr=log)
        for _ in range(600):
            try:
                call(base, "GET", "/healthz")
                return process
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("brama did not start")

    def stop(process):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    def fresh_chains():
        # A new login per account: a new session and token each (the previous ones are revoked).
        with open(tokens_file, "w") as f:
            for user in users:
                f.write(call(base, "POST", "/api/auth/login", {"username": user, "password": PASSWORD})["refreshToken"] + "\n")

    def janitor_started():
        # Its first pass has begun (busy) or is over (idle): passes are counted at their end, so
        # on an idle server wait for the count; on a busy one for the first rows deleted.
        for _ in range(600):
            if metric_sum(base, "brama_janitor_deleted_total") > 0 or metric_sum(base, "brama_janitor_passes_total") > 0:
                return
            time.sleep(0.05)
        raise RuntimeError("the janitor did not start")

    def refresh(label):
        fresh_chains()
        janitor_started()
        return wrk("bench/lua/refresh.lua", base + "/", connections, {"BRAMA_TOKENS_FILE": tokens_file, "BRAMA_THREADS": "1"},
                   perf=(server.pid, f"{name}-{label}"))

    server = start()
    for user in users:
        call(base, "POST", "/api/auth/register", {"username": user, "email": f"{user}@example.org", "password": PASSWORD})
    stop(server)
    result = {"rounds": []}
    try:
        for r in range(rounds):
            tag = f"r{r}"
            round_ = {}
            for kind in (["idle", "busy"] if r % 2 == 0 else ["busy", "idle"]):
                # The same rows each time; only on the busy server are they litter.
                backlog = seed_backlog(data_dir, database_url, f"{tag}{kind}", kind == "busy")
                if kind == "busy":
                    round_["backlog"] = backlog
                server = start()
                before = metric_sum(base, "brama_janitor_deleted_total")
                round_[kind] = refresh(f"refresh_janitor_{kind}")
                if kind == "busy":
                    after = metric_sum(base, "brama_janitor_deleted_total")
                    # The janitor worked through the whole run: rows went during it, and some
                    # were still left at its end.
                    round_["deleted_during"] = after - before
                    round_["left_after"] = round_["backlog"] - after
                    if round_["deleted_during"] <= 0 or round_["left_after"] <= 0:
                        raise RuntimeError(f"the janitor was not at work for the whole run: {round_}")
                stop(server)
                server = None
                clear_backlog(data_dir, database_url, f"{tag}{kind}")
            result["rounds"].append(round_)
    finally:
        if server:
            stop(server)
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


def hash_rate():
    out = subprocess.run(["taskset", "-c", SERVER_CORE, "cargo", "bench", "--bench", "argon2", "--quiet"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def datakey_cost():
    """Microseconds to seal, open and blind-index one PESEL (`cargo bench --bench datakey`)."""
    out = subprocess.run(["taskset", "-c", SERVER_CORE, "cargo", "bench", "--bench", "datakey", "--quiet"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def cpu_model():
    """The CPU's model name, from /proc/cpuinfo."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine():
    model = cpu_model()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0:1]
    pg = subprocess.run(["psql", PG_ADMIN, "-tAc", "show server_version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(), "wrk": wrk_version[0] if wrk_version else "?",
            "postgres": pg, "rustc": subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()}


def main():
    if not os.environ.get("BENCH_BIN"):
        sh(["cargo", "build", "--profile", "profiling"] if PERF else ["cargo", "build", "--release"])
    if not os.environ.get("BENCH_BIN") or not os.path.exists(HELLO):
        sh(["cargo", "build", "--profile", "profiling" if PERF else "release", "--example", "hello"])
    raw = hash_rate() if wanted("login") else None
    db = f"brama_bench_{int(time.time())}"
    subprocess.run(["psql", PG_ADMIN, "-qc", f"CREATE DATABASE {db}"], check=True)
    pg_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    runs = {}
    subprocess.run(["psql", PG_ADMIN, "-qc", f"CREATE DATABASE {db}_janitor"], check=True)
    try:
        for backend in BACKENDS:
            runs[backend] = bench_backend(backend, None if backend == "sqlite" else pg_url)
            if wanted("refresh_janitor"):
                runs[backend]["janitor"] = bench_janitor(backend, None if backend == "sqlite" else pg_url + "_janitor")
    finally:
        for name in (db, db + "_janitor"):
            subprocess.run(["psql", PG_ADMIN, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
    if ONLY or PERF or BACKENDS != ["sqlite", "postgres"] or os.environ.get("BENCH_BIN"):
        # A partial or profiled run: print the figures, keep BENCHMARKS.md from full runs only.
        for backend, r in runs.items():
            for n, round_ in enumerate(r.get("janitor", {}).get("rounds", [])):
                r[f"janitor{n}_busy"], r[f"janitor{n}_idle"] = round_["busy"], round_["idle"]
                print(f"{backend:9} janitor round {n}: deleted {round_['deleted_during']:.0f} rows during the busy run, "
                      f"{round_['left_after']:.0f} left after it")
            for fmt, e in r.get("members_export", {}).items():
                if "failed" in e:
                    print(f"{backend:9} export {fmt:5} failed after {e['seconds']:.2f} s: {e['failed']}")
                    continue
                print(f"{backend:9} export {fmt:5} {e['seconds']:6.2f} s  {e['bytes'] / 2**20:6.1f} MiB  "
                      f"peak RSS {e['peak_rss_mib']:.0f} MiB")
            for scenario, s in r.items():
                if isinstance(s, dict) and "rps" in s:
                    print(f"{backend:9} {scenario:22} {s['rps']:9.0f}/s  p50 {s['p50_ms']:7.2f} ms  p99 {s['p99_ms']:7.2f} ms  "
                          f"errors {s['errors']}  non-2xx {s['non2xx']}  server CPU {s.get('server_cpu_us', 0):6.1f} µs/request"
                          + (f"  RSS peak {s['memory']['peak']:.0f} end {s['memory']['rss']:.0f} MiB" if "memory" in s else ""))
            for key in ("memory_idle_start", "memory_end"):
                if key in r:
                    print(f"{backend:9} {key:22} RSS {r[key]['rss']:.1f} MiB (anon {r[key]['anon']:.1f}, file {r[key]['file']:.1f})")
            if "import_seconds" in r:
                print(f"{backend:9} import {MEMBERS} members in {r['import_seconds']:.1f} s")
        return
    json.dump({"machine": machine(), "argon2": raw, "datakey": datakey_cost(), "runs": runs}, open(os.path.join(ROOT, "target", "bench.json"), "w"), indent=2)
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "report.py")], check=True)


if __name__ == "__main__":
    main()
