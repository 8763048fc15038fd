#!/usr/bin/env python3
"""brama's chaos run (issue 13). One command: `bench/chaos`.

Starts a PostgreSQL cluster and a Redis of its own (temporary directory, free ports; the
machine's shared ones are never touched), brama on them pinned to core 0, and drives it from
core 1 for CHAOS_SECONDS (60) with login, refresh, `/me` and member traffic from a few client
threads, while PostgreSQL (`pg_ctl stop -m immediate`) and Redis (SIGKILL) are each stopped for
3-8 s and started again at random moments. Reports requests by status, answer times, the time
brama took to recover after each fault and the acknowledged writes lost, checks the targets of
issue 13, writes target/chaos.json and the chaos section of BENCHMARKS.md, and exits non-zero if
a target is missed.

  CHAOS_SEED=n       the seed of the fault schedule and of the traffic mix (printed; random otherwise)
  CHAOS_SECONDS=s    length of the load (default 60)
  CHAOS_BIN=path     run that brama binary (default target/release/brama, built by bench/chaos)
  CHAOS_THREADS=n    client threads (default 8)

A run other than the standard one (CHAOS_SECONDS or CHAOS_BIN or CHAOS_THREADS set to something
else) writes target/chaos-partial.json and leaves BENCHMARKS.md and target/chaos.json alone.
Standard library only.
"""
import datetime
import http.client
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos_report  # noqa: E402
from run import cpu_model, free_port  # noqa: E402 (bench/run.py: its main runs only as a script)
from seed_members import pesel  # noqa: E402 (valid, distinct PESELs, as the benchmark imports)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.environ.get("CHAOS_BIN") or os.path.join(ROOT, "target", "release", "brama"))
SECONDS = float(os.environ.get("CHAOS_SECONDS") or 60)
THREADS = int(os.environ.get("CHAOS_THREADS") or 8)
SEED = int(os.environ["CHAOS_SEED"]) if os.environ.get("CHAOS_SEED") else random.SystemRandom().randrange(1, 2**31)
STANDARD = SECONDS == 60 and not os.environ.get("CHAOS_BIN") and THREADS == 8
DATABASE_TIMEOUT = 2.0  # brama's default; the target is this + 1 s
CLIENT_TIMEOUT = 30.0  # per request: a hang is measured, not hidden
PASSWORD = "Zx8!quokka"
FAULT_MIN, FAULT_MAX = 3.0, 8.0
POLL_EVERY = 0.1
CORES = os.cpu_count() or 1
SERVER_CORE, LOAD_CORE = ("0", "1") if CORES >= 2 else (None, None)
ALL_CORES = f"0-{CORES - 1}"
# What each client thread does, by weight. A login is an argon2id hash (~50 ms of brama's one
# core, one at a time), so it has threads of its own; mixed with the rest, the threads would spend
# most of the run queued behind hashes and send little else.
LOGIN_THREADS = max(1, THREADS // 4)
MIX = {"refresh": 30, "me": 20, "member_create": 20, "member_read": 30}
LOGIN_MIX = {"login": 2, "web_login": 1}
# Requests that cannot succeed without the database (`/me` may be answered from brama's cache).
DB_KINDS = {"login", "web_login", "refresh", "web_refresh", "member_create", "member_read", "member_list"}
FAILURE_STATUSES = {"conn-error", "timeout"}

T0 = None  # time.monotonic() when the load starts; every time in the report is relative to it


def now():
    return time.monotonic() - T0 if T0 is not None else 0.0


def log(msg):
    print(f"[chaos {now():7.2f}] {msg}", flush=True)


def pinned(cmd, core):
    return ["taskset", "-c", core] + cmd if core is not None and shutil.which("taskset") else cmd


# ---------------------------------------------------------------------------------------------
# The dependencies: a PostgreSQL cluster and a Redis of the run's own (as tests/api/faults.rs).

class Cluster:
    def __init__(self, workdir):
        versions = sorted((os.path.join("/usr/lib/postgresql", v, "bin") for v in os.listdir("/usr/lib/postgresql")),
                          key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[-2].split(".")])
        found = [b for b in versions if os.path.exists(os.path.join(b, "initdb"))]
        if not found:
            raise RuntimeError("PostgreSQL's initdb (/usr/lib/postgresql/*/bin) is not installed")
        self.bin = found[-1]
        self.dir = os.path.join(workdir, "pg")
        os.makedirs(self.dir)
        self.port = free_port()
        self.running = False
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres:postgres", self.dir], check=True)
        self.run("initdb", ["-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync"])

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def command(self, program, args):
        cmd = [os.path.join(self.bin, program)] + args
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        # Not pinned: PostgreSQL runs where the scheduler puts it (as in bench/run).
        return pinned(cmd, ALL_CORES)

    def run(self, program, args, check=True):
        out = subprocess.run(self.command(program, args), cwd=self.dir, capture_output=True, text=True)
        if check and out.returncode != 0:
            raise RuntimeError(f"{program} {args}: {out.stdout}{out.stderr}")
        return out

    def up(self):
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", ["-D", self.data, "-w", "-t", "60", "-o", options, "-l", os.path.join(self.dir, "server.log"), "start"])
        self.running = True

    def crash(self, check=True):
        """Every backend killed at once, nothing shut down cleanly (the next start recovers from the WAL)."""
        self.run("pg_ctl", ["-D", self.data, "-w", "-t", "60", "-m", "immediate", "stop"], check=check)
        self.running = False

    def version(self):
        return subprocess.run([os.path.join(self.bin, "postgres"), "--version"], capture_output=True, text=True).stdout.strip()


class Redis:
    def __init__(self, workdir):
        self.port = free_port()
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir)
        self.child = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def up(self):
        self.child = subprocess.Popen(pinned(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                              "--save", "", "--appendonly", "no"], ALL_CORES),
                                      cwd=self.dir, stdout=subprocess.DEVNULL, start_new_session=True)
        began = time.monotonic()
        while not self.ping():
            if self.child.poll() is not None or time.monotonic() - began > 30:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args):
        """One command in RESP; its reply (bytes, int, list or None)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(f"*{len(args)}\r\n".encode() + b"".join(
                f"${len(a.encode())}\r\n{a}\r\n".encode() for a in map(str, args)))
            f = s.makefile("rb")

            def read():
                line = f.readline().rstrip(b"\r\n")
                kind, rest = line[:1], line[1:]
                if kind == b"+":
                    return rest
                if kind == b"-":
                    raise RuntimeError(rest.decode())
                if kind == b":":
                    return int(rest)
                if kind == b"$":
                    n = int(rest)
                    return None if n < 0 else f.read(n + 2)[:-2]
                if kind == b"*":
                    n = int(rest)
                    return None if n < 0 else [read() for _ in range(n)]
                raise RuntimeError(f"unexpected reply {line!r}")
            return read()

    def counters(self):
        """brama's rate-limit counters: {key: (value, milliseconds left)}."""
        out = {}
        for key in self.command("KEYS", "brama:*") or []:
            key = key.decode()
            try:
                value = self.command("GET", key)
                out[key] = (int(value) if value is not None else None, self.command("PTTL", key))
            except (RuntimeError, ValueError):
                continue
        return out

    def kill(self):
        """SIGKILL: the connections drop, nothing is said."""
        if self.child is not None:
            self.child.kill()
            self.child.wait()
            self.child = None


# ---------------------------------------------------------------------------------------------
# HTTP

class Answer:
    __slots__ = ("status", "headers", "body", "start", "end")

    def __init__(self, status, headers, body, start, end):
        self.status, self.headers, self.body, self.start, self.end = status, headers, body, start, end

    @property
    def ok(self):
        return isinstance(self.status, int) and 200 <= self.status < 300

    def json(self):
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            return {}

    def text(self, limit=600):
        return self.body[:limit].decode("utf-8", "replace") if isinstance(self.body, bytes) else str(self.body)[:limit]


class Client:
    """One keep-alive connection; reconnects after a failure."""

    def __init__(self, port, timeout=CLIENT_TIMEOUT):
        self.port, self.timeout, self.conn = port, timeout, None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        hdrs = {"content-type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        data = json.dumps(body).encode() if body is not None else None
        start = now()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.request(method, path, body=data, headers=hdrs)
            r = self.conn.getresponse()
            raw = r.read()
            end = now()
            headers = {k.lower(): v for k, v in r.getheaders()}
            if headers.get("connection", "").lower() == "close":
                self.close()
            return Answer(r.status, headers, raw, start, end)
        except TimeoutError as e:
            status, err = "timeout", e
        except (OSError, http.client.HTTPException) as e:
            status, err = "conn-error", e
        self.close()
        return Answer(status, {}, f"{type(err).__name__}: {err}".encode(), start, now())


# ---------------------------------------------------------------------------------------------
# The run's shared state.

class Run:
    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.findings = []  # (t, text)
        self.bodies_5xx = []  # first few non-503 5xx answers, whole
        self.no_retry_after = 0  # 503 answers without Retry-After

    def finding(self, text, t=None):
        with self.lock:
            self.findings.append((now() if t is None else t, text))
            shown = len(self.findings) <= 20
        if shown:
            log("FINDING: " + text)


def member_body(idx, serial, pesel_):
    return {"imie": "Anna", "nazwisko": f"Chaos{idx}x{serial}", "wyksztalcenie": "Średnie", "pesel": pesel_,
            "wojewodztwo": "mazowieckie", "miejscowosc": "Warszawa", "ulica": "Przykładowa", "nrdomulokalu": "5b",
            "kodpocztowy": "72-978", "email": f"chaos{idx}x{serial}@example.com", "tel": "768-895-832"}


class Chain:
    """One refresh-token chain: the newest token brama acknowledged (a 2xx answer)."""

    def __init__(self, surface, token, at):
        self.surface, self.token, self.started_at = surface, token, at
        self.rotations = 0
        self.errors_since_ack = 0  # rotations of `token` answered with 503 / conn-error / timeout
        self.lost = None  # why the newest acknowledged token stopped working


class Worker(threading.Thread):
    def __init__(self, run, idx, mod_token):
        super().__init__(name=f"load{idx}", daemon=True)
        self.run_, self.idx = run, idx
        self.rng = random.Random(f"{SEED}-load-{idx}")
        self.client = Client(run.port)
        self.surface = "api" if idx % 2 == 0 else "web"
        self.mod_token = mod_token
        self.records = []  # (kind, status, start, end)
        self.chains = []
        self.members = []  # (id, pesel, acknowledged at)
        self.unacked_pesels = []  # creates answered with an error: maybe stored, maybe not
        self.serial = 0
        mix = LOGIN_MIX if idx >= THREADS - LOGIN_THREADS else MIX
        self.kinds, self.weights = list(mix), list(mix.values())

    def call(self, kind, method, path, body=None, headers=None):
        a = self.client.request(method, path, body, headers)
        self.records.append((kind, a.status, a.start, a.end))
        if isinstance(a.status, int) and a.status >= 500 and a.status != 503:
            self.run_.finding(f"{kind} {method} {path} → {a.status} at t = {a.start:.2f} s after {(a.end - a.start) * 1000:.0f} ms "
                              f"(x-request-id {a.headers.get('x-request-id')}): {a.text()}", a.start)
            with self.run_.lock:
                if len(self.run_.bodies_5xx) < 20:
                    self.run_.bodies_5xx.append({"kind": kind, "path": path, "status": a.status, "start": a.start,
                                                 "body": a.text(4000), "headers": a.headers})
        elif a.status == 503 and "retry-after" not in a.headers:
            with self.run_.lock:
                self.run_.no_retry_after += 1
        elif a.status == 429:
            # Every limit is raised out of reach: a 429 is a finding.
            self.run_.finding(f"{kind} {method} {path} → 429 (Retry-After {a.headers.get('retry-after')}) at t = {a.start:.2f} s: "
                              f"{a.text()}", a.start)
        elif a.status in FAILURE_STATUSES:
            self.run_.finding(f"{kind} {method} {path} → {a.status} at t = {a.start:.2f} s after {(a.end - a.start) * 1000:.0f} ms: "
                              f"{a.text()}", a.start)
        return a

    def run(self):
        while not self.run_.stop.is_set():
            getattr(self, "op_" + self.rng.choices(self.kinds, self.weights)[0])()

    # The traffic.

    def op_login(self):
        self.call("login", "POST", "/api/auth/login", {"username": f"login{self.idx}", "password": PASSWORD})

    def op_web_login(self):
        self.call("web_login", "POST", "/web/auth", {"email": f"login{self.idx}@example.org", "password": PASSWORD})

    def op_me(self):
        self.call("me", "GET", "/api/auth/me", headers={"x-access-token": self.mod_token})

    def start_chain(self):
        """A new chain for this thread's chain account (its previous session, if any, ends)."""
        if self.surface == "api":
            a = self.call("login", "POST", "/api/auth/login", {"username": f"chain{self.idx}", "password": PASSWORD})
            token = a.json().get("refreshToken") if a.ok else None
        else:
            a = self.call("web_login", "POST", "/web/auth", {"email": f"chain{self.idx}@example.org", "password": PASSWORD})
            token = (a.json().get("data") or {}).get("refresh") if a.ok else None
        if token:
            self.chains.append(Chain(self.surface, token, a.end))

    def op_refresh(self):
        chain = self.chains[-1] if self.chains else None
        if chain is None or chain.lost:
            self.start_chain()
            return
        a, new = refresh(self, chain)
        if a.ok and new:
            chain.token, chain.errors_since_ack = new, 0
            chain.rotations += 1
        elif a.status == 503 or a.status in FAILURE_STATUSES or (isinstance(a.status, int) and a.status >= 500):
            chain.errors_since_ack += 1  # unknown whether it rotated; presented again next time
        elif a.status != 429:
            chain.lost = lost_chain(chain, a, "during the run")
            self.run_.finding(f"refresh chain of thread {self.idx} ({chain.surface}): its newest acknowledged token was refused "
                              f"at t = {a.start:.2f} s: {chain.lost}", a.start)

    def op_member_create(self):
        self.serial += 1
        p = pesel(self.idx * 1_000_000 + self.serial)
        a = self.call("member_create", "POST", "/api/membership/members", member_body(self.idx, self.serial, p),
                      {"x-access-token": self.mod_token})
        if a.ok:
            mid = a.json().get("_id")
            if mid:
                self.members.append((mid, p, a.end))
            else:
                self.run_.finding(f"member create answered {a.status} without an _id: {a.text()}", a.start)
        elif a.status == 503 or a.status in FAILURE_STATUSES or (isinstance(a.status, int) and a.status >= 500):
            self.unacked_pesels.append(p)
        elif a.status != 429:
            self.run_.finding(f"member create answered {a.status} at t = {a.start:.2f} s: {a.text()}", a.start)

    def op_member_read(self):
        if not self.members:
            self.call("member_list", "GET", "/api/membership/members?page=1&limit=20", headers={"x-access-token": self.mod_token})
            return
        mid, p, acked = self.rng.choice(self.members)
        a = self.call("member_read", "GET", f"/api/membership/members/{mid}", headers={"x-access-token": self.mod_token})
        if a.status == 404 or (a.ok and a.json().get("pesel") != p):
            self.run_.finding(f"member {mid} (acknowledged at t = {acked:.2f} s) read at t = {a.start:.2f} s → {a.status}: "
                              f"{a.text()}", a.start)


def refresh(worker, chain):
    """One rotation of `chain`'s newest token: (answer, the new refresh token or None)."""
    if chain.surface == "api":
        a = worker.call("refresh", "POST", "/api/auth/refreshtoken", {"refreshToken": chain.token})
        return a, (a.json().get("refreshToken") if a.ok else None)
    a = worker.call("web_refresh", "POST", "/web/refresh", {"refresh": chain.token})
    return a, ((a.json().get("data") or {}).get("refresh") if a.ok else None)


def lost_chain(chain, a, when):
    why = f"{when}: {a.status} {a.text(300)}"
    if chain.errors_since_ack:
        why += (f" (after {chain.errors_since_ack} error answer(s) to rotations of the same token: one of them had rotated it, "
                "so presenting it again looked like reuse)")
    return why


# ---------------------------------------------------------------------------------------------
# Faults and the pollers that watch brama during them.

def schedule(rng, seconds):
    """For each dependency, n faults of 3-8 s, one in each of n equal slots of the load (leaving
    the first seconds and the last few for recovery); PostgreSQL's and Redis's may overlap."""
    lead, tail = min(5.0, seconds * 0.1), min(6.0, max(3.0, seconds * 0.25))
    n = 3 if seconds >= 60 else 2
    plan = []
    for dep in ("postgres", "redis"):
        slot = (seconds - tail - lead) / n
        for i in range(n):
            lo = lead + i * slot
            longest = max(0.5, min(FAULT_MAX, slot - 1.5))
            hold = rng.uniform(min(FAULT_MIN, longest), longest)
            plan.append({"dependency": dep, "at": rng.uniform(lo, max(lo, lo + slot - hold - 1.5)), "hold": hold})
    return sorted(plan, key=lambda f: f["at"])


class FaultThread(threading.Thread):
    def __init__(self, run, dep, plan, cluster, redis):
        super().__init__(name=f"faults-{dep}", daemon=True)
        self.run_, self.dep, self.plan, self.cluster, self.redis = run, dep, plan, cluster, redis
        self.events = []
        self.error = None

    def run(self):
        try:
            for f in self.plan:
                if self.run_.stop.wait(max(0.0, f["at"] - now())):
                    return
                ev = {"dependency": self.dep, "planned_at": f["at"], "hold": f["hold"], "stop_began": now()}
                if self.dep == "postgres":
                    self.cluster.crash()
                else:
                    self.redis.kill()
                ev["down_at"] = now()
                log(f"{self.dep} down (planned {f['at']:.2f} s, for {f['hold']:.1f} s)")
                self.events.append(ev)
                # Down for the planned time; a run stopped early (Ctrl-C, an error) does not start it
                # again (the cleanup waits for this thread before it stops what is up).
                if self.run_.stop.wait(f["hold"]):
                    return
                ev["start_began"] = now()
                if self.dep == "postgres":
                    self.cluster.up()
                else:
                    self.redis.up()
                ev["up_at"] = now()
                log(f"{self.dep} back (start took {ev['up_at'] - ev['start_began']:.2f} s)")
        except Exception as e:  # reported by main
            self.error = e


class Poller(threading.Thread):
    """GETs `path` every 100 ms on its own connection: (start, end, status, body)."""

    def __init__(self, run, path, keep_body):
        super().__init__(name=f"poll{path}", daemon=True)
        self.run_, self.path, self.keep_body = run, path, keep_body
        self.client = Client(run.port)
        self.samples = []

    def run(self):
        while not self.run_.stop.is_set():
            a = self.client.request("GET", self.path)
            self.samples.append((a.start, a.end, a.status, self.keep_body(a)))
            self.run_.stop.wait(max(0.0, POLL_EVERY - (a.end - a.start)))


class CounterPoller(threading.Thread):
    """Reads brama's login counter for this client's address in Redis every 100 ms (while Redis is
    up): (time, value). A diagnostic: each successful login takes a place and gives it back."""

    KEY = "brama:login:ip:127.0.0.1"

    def __init__(self, run, redis):
        super().__init__(name="poll-redis", daemon=True)
        self.run_, self.redis = run, redis
        self.samples = []
        self.stop = threading.Event()  # runs on through the checks after the load

    def run(self):
        while not self.stop.is_set():
            try:
                value = self.redis.command("GET", self.KEY)
                self.samples.append((now(), int(value) if value is not None else None))
            except (OSError, RuntimeError, ValueError):
                pass
            self.stop.wait(POLL_EVERY)


def brama_log_errors(path):
    """brama's ERROR lines, without their time, and how often each was logged."""
    import re
    counts = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
                if " ERROR " not in line:
                    continue
                message = line.split(" ERROR ", 1)[1]
                counts[message] = counts.get(message, 0) + 1
    except OSError:
        pass
    return counts


def redis_up_gauge(a):
    if not a.ok:
        return None
    for line in a.body.decode("utf-8", "replace").splitlines():
        if line.startswith("brama_redis_up"):
            return float(line.rsplit(" ", 1)[1])
    return None


# ---------------------------------------------------------------------------------------------
# brama

def server_env(data_dir, port, cluster, redis):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAMA_")}
    env.update({
        "BRAMA_DATA_DIR": data_dir, "BRAMA_LISTEN": f"127.0.0.1:{port}",
        "BRAMA_DATABASE_URL": cluster.url, "BRAMA_REDIS_URL": redis.url,
        "BRAMA_DATABASE_TIMEOUT": f"{DATABASE_TIMEOUT:g}",
        # Limits out of the way, as in bench/run: the run measures faults, not refusals.
        "BRAMA_FAILED_LOGINS_PER_ACCOUNT": "100000000", "BRAMA_FAILED_LOGINS_PER_IP": "100000000",
        "BRAMA_REGISTRATIONS_PER_IP_PER_HOUR": "100000000", "BRAMA_HASH_QUEUE": "4096",
        "BRAMA_ACCESS_TOKEN_MINUTES": "15", "RUST_LOG": "warn",
    })
    return env


def cli(env, args, stdin=None):
    out = subprocess.run([BIN] + args, env=env, input=stdin, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"brama {' '.join(args)}: {out.stdout}{out.stderr}")


def login(client, username, run=None):
    """An access token for `username`; tries for up to 30 s (a refusal is a finding when `run`)."""
    began = time.monotonic()
    while True:
        a = client.request("POST", "/api/auth/login", {"username": username, "password": PASSWORD})
        if a.ok:
            return a.json()["accessToken"]
        if run is not None:
            run.finding(f"login {username} after the run: {a.status} {a.headers.get('retry-after', '')} {a.text()}")
        if time.monotonic() - began > 30:
            raise RuntimeError(f"login {username}: {a.status} {a.text()}")
        time.sleep(1)


def wait_until(what, check, within):
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > within:
            raise RuntimeError(f"{what}: not within {within} s")
        time.sleep(0.1)
    return time.monotonic() - began


# ---------------------------------------------------------------------------------------------
# Figures

def percentile(values, p):
    """Nearest rank."""
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


def latency(durations_s):
    ms = [d * 1000 for d in durations_s]
    return {"count": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None}


def status_key(s):
    return str(s)


def analyse(records, faults, readyz, metrics, workers, verification, run):
    by_status, by_kind = {}, {}
    for kind, status, start, end in records:
        s = status_key(status)
        by_status[s] = by_status.get(s, 0) + 1
        row = by_kind.setdefault(kind, {"total": 0, "by_status": {}, "d": []})
        row["total"] += 1
        row["by_status"][s] = row["by_status"].get(s, 0) + 1
        row["d"].append(end - start)
    order = ["login", "web_login", "refresh", "web_refresh", "me", "member_create", "member_read", "member_list"]
    kinds = {}
    for kind in sorted(by_kind, key=lambda k: order.index(k) if k in order else 99):
        row = by_kind[kind]
        lat = latency(row.pop("d"))
        row["p99_ms"], row["max_ms"] = lat["p99_ms"], lat["max_ms"]
        kinds[kind] = row

    windows = [(f["stop_began"], f.get("up_at") if f.get("up_at") is not None else float("inf")) for f in faults]

    def in_fault(start, end):
        return any(start < hi and end > lo for lo, hi in windows)

    during = [(end - start) for _, _, start, end in records if in_fault(start, end)]
    outside = [(end - start) for _, _, start, end in records if not in_fault(start, end)]
    slowest = max(records, key=lambda r: r[3] - r[2]) if records else None

    def nearest_fault(start):
        """The fault nearest to a moment: its dependency, and the moment relative to its stop and start."""
        if not faults:
            return None
        f = min(faults, key=lambda f: min(abs(start - f["down_at"]), abs(start - (f.get("up_at") or f["down_at"]))))
        return {"dependency": f["dependency"], "after_down_s": start - f["down_at"],
                "after_up_s": (start - f["up_at"]) if f.get("up_at") is not None else None}
    top = sorted(records, key=lambda r: r[2] - r[3])[:10]
    slowest_list = [{"kind": k, "status": status_key(st), "start": a, "ms": (b - a) * 1000, "fault": nearest_fault(a)}
                    for k, st, a, b in top]

    out_faults = []
    for f in faults:
        lo, hi = f["stop_began"], f.get("up_at")
        hi_ = hi if hi is not None else float("inf")
        statuses = {}
        for kind, status, start, end in records:
            if start < hi_ and end > lo:
                statuses[status_key(status)] = statuses.get(status_key(status), 0) + 1
        item = {"dependency": f["dependency"], "planned_at": f["planned_at"], "hold": f["hold"], "stop_began": lo,
                "down_at": f["down_at"], "start_began": f.get("start_began"), "up_at": hi,
                "down_for": (hi - f["down_at"]) if hi is not None else None, "statuses_during": statuses,
                "recovery_s": None}
        if f["dependency"] == "postgres":
            if hi is not None:
                firsts = [end for kind, status, start, end in records
                          if kind in DB_KINDS and isinstance(status, int) and 200 <= status < 300 and end >= hi]
                if firsts:
                    item["recovery_s"] = min(firsts) - hi
                # 2xx answers to database requests made and answered while it was down, before its
                # start even began (PostgreSQL accepts connections a little before `pg_ctl start -w`
                # notices): from a cache, or a bug.
                served = {}
                for kind, status, start, end in records:
                    if (kind in DB_KINDS and isinstance(status, int) and 200 <= status < 300
                            and start > f["down_at"] and end < f["start_began"]):
                        served[kind] = served.get(kind, 0) + 1
                item["db_2xx_while_down"] = served
            during_r = [s for s in readyz if s[0] >= lo and s[0] < hi_]
            first_503 = [s[1] for s in during_r if s[2] == 503]
            item["readyz_first_503_after"] = (min(first_503) - f["down_at"]) if first_503 else None
            item["readyz_max_ms"] = max((s[1] - s[0]) * 1000 for s in during_r) if during_r else None
            item["readyz_503_max_ms"] = max(((s[1] - s[0]) * 1000 for s in during_r if s[2] == 503), default=None)
            item["readyz_statuses"] = {}
            for s in during_r:
                item["readyz_statuses"][status_key(s[2])] = item["readyz_statuses"].get(status_key(s[2]), 0) + 1
            back = [s[1] for s in readyz if hi is not None and s[0] >= hi and s[2] == 200]
            item["readyz_200_after"] = (min(back) - hi) if back else None
        else:
            zero = [s[1] for s in metrics if s[0] >= lo and s[1] < hi_ and s[3] == 0.0]
            item["gauge_down_after"] = (min(zero) - f["down_at"]) if zero else None
            if hi is not None:
                ones = [s[1] for s in metrics if s[0] >= hi and s[3] == 1.0]
                item["recovery_s"] = (min(ones) - hi) if ones else None
        out_faults.append(item)
    return {"requests": {"total": len(records), "by_status": dict(sorted(by_status.items(), key=lambda kv: kv[0])),
                         "by_kind": kinds},
            "latency": {"all": latency([r[3] - r[2] for r in records]), "during_faults": latency(during),
                        "outside_faults": latency(outside),
                        "slowest": {"kind": slowest[0], "status": status_key(slowest[1]), "start": slowest[2],
                                    "ms": (slowest[3] - slowest[2]) * 1000} if slowest else None,
                        "slowest_10": slowest_list},
            "faults": out_faults}


def verify(client, workers, owner_token, run):
    """After the faults, every acknowledged write must still be there."""
    auth = {"x-access-token": owner_token}
    w = {"members_acknowledged": 0, "members_lost": 0, "member_creates_unacknowledged": 0, "members_stored_without_ack": 0,
         "refresh_rotations_acknowledged": 0, "chains": 0, "chains_checked_ok": 0, "chains_lost": 0,
         "chains_lost_after_error_answer": 0, "lost_members": [], "lost_chains": []}

    def get(path, **kw):
        for attempt in range(10):
            a = client.request("GET", path, **kw)
            if a.status in (200, 404):
                return a
            time.sleep(0.5)
        return a

    for wk in workers:
        for mid, p, acked in wk.members:
            w["members_acknowledged"] += 1
            a = get(f"/api/membership/members/{mid}", headers=auth)
            if not (a.ok and a.json().get("pesel") == p):
                w["members_lost"] += 1
                w["lost_members"].append({"id": mid, "pesel": p, "acknowledged_at": acked, "answer": f"{a.status} {a.text(300)}"})
    # Every member in the register: creates answered with an error may or may not have been stored.
    stored, page = set(), 1
    while True:
        a = get(f"/api/membership/members?page={page}&limit=1000&sort=createdAt", headers=auth)
        if not a.ok:
            run.finding(f"listing the members after the run: {a.status} {a.text(300)}")
            break
        rows = a.json()
        stored.update(m.get("pesel") for m in rows)
        if len(rows) < 1000:
            break
        page += 1
    acked_pesels = {p for wk in workers for _, p, _ in wk.members}
    unacked = [p for wk in workers for p in wk.unacked_pesels]
    w["member_creates_unacknowledged"] = len(unacked)
    w["members_stored_without_ack"] = sum(1 for p in unacked if p in stored)
    strangers = stored - acked_pesels - set(unacked)
    if strangers:
        run.finding(f"{len(strangers)} members stored that nobody created: {sorted(strangers)[:5]}")

    # Each chain's newest acknowledged token, refreshed once.
    for wk in workers:
        for chain in wk.chains:
            w["chains"] += 1
            w["refresh_rotations_acknowledged"] += chain.rotations
            if not chain.lost:
                for attempt in range(10):
                    a, new = refresh(wk, chain)
                    if a.status != 503 and a.status not in FAILURE_STATUSES:
                        break
                    chain.errors_since_ack += 1
                    time.sleep(0.5)
                if a.ok and new:
                    w["chains_checked_ok"] += 1
                    chain.token = new
                    continue
                chain.lost = lost_chain(chain, a, "after the run")
            w["chains_lost"] += 1
            if chain.errors_since_ack:
                w["chains_lost_after_error_answer"] += 1
            w["lost_chains"].append({"thread": wk.idx, "surface": chain.surface, "rotations": chain.rotations, "why": chain.lost})
    w["lost"] = w["members_lost"] + w["chains_lost"]
    return w


def machine(cluster):
    model = cpu_model()
    redis_v = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    redis_v = next((x.split("=", 1)[1] for x in redis_v if x.startswith("v=")), "?")
    return {"cpu": model, "cores": CORES, "kernel": platform.release(), "postgres": cluster.version(),
            "redis": f"Redis {redis_v}", "python": platform.python_version(),
            "server_core": SERVER_CORE or "any", "load_core": LOAD_CORE or "any"}


def git_commit():
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "migrations", "Cargo.toml", "Cargo.lock"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return f"{head or '?'}{' + uncommitted changes to src/' if dirty else ''}"


def command_line():
    parts = [f"CHAOS_SEED={SEED}"]
    for name in ("CHAOS_SECONDS", "CHAOS_THREADS", "CHAOS_BIN"):
        if os.environ.get(name):
            parts.append(f"{name}={os.environ[name]}")
    return " ".join(parts) + " bench/chaos"


def targets(data, readyz_ok_value):
    req, lat, faults, w = data["requests"], data["latency"], data["faults"], data["writes"]
    server_errors = sum(n for s, n in req["by_status"].items() if s.isdigit() and int(s) >= 500 and s != "503")
    conn = sum(req["by_status"].get(s, 0) for s in FAILURE_STATUSES)
    bound_ms = (DATABASE_TIMEOUT + 1) * 1000
    recov = [(f["dependency"], f["recovery_s"]) for f in faults]
    recov_ok = all(r is not None and r <= 2.0 for _, r in recov) and len(recov) > 0
    each = ", ".join(f"{d} {'never' if r is None else f'{r:.2f} s'}" for d, r in recov)
    readyz_worst, readyz_ok = readyz_ok_value
    return [
        {"name": "no 500 (no 5xx answer but 503)", "value": f"{server_errors}", "ok": server_errors == 0},
        {"name": "no connection error or timeout", "value": f"{conn}", "ok": conn == 0},
        {"name": f"longest answer ≤ database_timeout + 1 s = {bound_ms / 1000:g} s",
         "value": f"{lat['all']['max_ms']:.0f} ms" if lat["all"]["max_ms"] is not None else "no requests",
         "ok": lat["all"]["max_ms"] is not None and lat["all"]["max_ms"] <= bound_ms},
        {"name": "each recovery within 2 s of the dependency's return", "value": each, "ok": recov_ok},
        {"name": "acknowledged writes lost = 0", "value": f"{w['lost']}", "ok": w["lost"] == 0},
        {"name": "`/readyz` answers 503 within 1 s while PostgreSQL is down", "value": readyz_worst, "ok": readyz_ok,
         "gating": False},
    ]


# ---------------------------------------------------------------------------------------------

def terminate(*_):
    raise SystemExit(143)


def main():
    global T0
    for tool in ("redis-server", "runuser" if os.geteuid() == 0 else "true"):
        if not shutil.which(tool):
            sys.exit(f"bench/chaos needs {tool}")
    if not os.path.exists(BIN):
        sys.exit(f"no brama binary at {BIN} (bench/chaos builds it; or set CHAOS_BIN)")
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, also when started with SIGINT ignored
    rng = random.Random(SEED)
    plan = schedule(rng, SECONDS)
    print(f"chaos: seed {SEED} (CHAOS_SEED={SEED} repeats this schedule), {SECONDS:g} s, {THREADS} threads, binary {BIN}",
          flush=True)
    for f in plan:
        print(f"chaos: planned: {f['dependency']:8} down at {f['at']:6.2f} s for {f['hold']:.1f} s", flush=True)

    workdir = tempfile.mkdtemp(prefix="brama-chaos-")
    os.chmod(workdir, 0o755)  # the postgres user must reach its cluster below
    target_dir = os.path.join(ROOT, "target")
    os.makedirs(target_dir, exist_ok=True)
    cluster = redis = server = None
    run = None
    threads = []
    brama_log = os.path.join(target_dir, "chaos-brama.log")
    try:
        cluster = Cluster(workdir)
        cluster.up()
        redis = Redis(workdir)
        redis.up()
        data_dir = os.path.join(workdir, "brama")
        os.makedirs(data_dir)
        port = free_port()
        env = server_env(data_dir, port, cluster, redis)
        cli(env, ["migrate"])
        cli(env, ["user", "create", "--username", "chaos", "--email", "chaos@example.org", "--role", "owner"], PASSWORD + "\n")
        for i in range(THREADS):
            cli(env, ["user", "create", "--username", f"mod{i}", "--email", f"mod{i}@example.org", "--role", "moderator"],
                PASSWORD + "\n")
            for name in ("login", "chain"):
                cli(env, ["user", "create", "--username", f"{name}{i}", "--email", f"{name}{i}@example.org", "--role", "user"],
                    PASSWORD + "\n")
        with open(brama_log, "w") as logf:
            server = subprocess.Popen(pinned([BIN, "serve"], SERVER_CORE), cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        run = Run(port)
        setup = Client(port)
        wait_until("brama answers /readyz", lambda: setup.request("GET", "/readyz").status == 200, 60)
        mod_tokens = [login(setup, f"mod{i}") for i in range(THREADS)]
        # The load (and everything else of this process) on the other core from here on.
        if LOAD_CORE is not None:
            os.sched_setaffinity(0, {int(LOAD_CORE)})

        T0 = time.monotonic()
        started_at = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        workers = [Worker(run, i, mod_tokens[i]) for i in range(THREADS)]
        readyz = Poller(run, "/readyz", lambda a: None)
        metrics = Poller(run, "/metrics", redis_up_gauge)
        fault_threads = [FaultThread(run, dep, [f for f in plan if f["dependency"] == dep], cluster, redis)
                         for dep in ("postgres", "redis")]
        counter = CounterPoller(run, redis)
        threads = workers + [readyz, metrics, counter] + fault_threads
        for t in threads:
            t.start()
        log("load started")
        run.stop.wait(SECONDS)
        for t in fault_threads:
            t.join()  # every fault is over (each ends before the load does)
        run.stop.set()
        for t in workers + [readyz, metrics]:
            t.join(CLIENT_TIMEOUT + 5)
        log("load stopped")
        for t in fault_threads:
            if t.error:
                raise RuntimeError(f"fault injection ({t.dep}) failed: {t.error}")
        # Nothing is down any more: wait for brama to be whole, then check every acknowledged write.
        check = Client(port)
        took = wait_until("brama ready again after the faults", lambda: check.request("GET", "/readyz").status == 200, 60)
        wait_until("brama back on Redis", lambda: redis_up_gauge(check.request("GET", "/metrics")) == 1.0, 60)
        log(f"ready ({took:.1f} s); verifying acknowledged writes")
        # The load's requests (verification adds its own refreshes to the workers' records).
        records = sorted((r for wk in workers for r in wk.records), key=lambda r: r[2])
        owner_token = login(check, "chaos", run)
        writes = verify(check, workers, owner_token, run)
        log("verified")
        counter.stop.set()
        counter.join()
        # brama's counters in Redis: each successful login takes its place back, so they stay small.
        counters = redis.counters()
        negative = [(t, v) for t, v in counter.samples if v is not None and v < 0]
        if negative:
            run.finding(f"Redis counter {CounterPoller.KEY} first below 0 at t = {negative[0][0]:.2f} s ({negative[0][1]}); "
                        f"lowest {min(v for _, v in negative)}", negative[0][0])
        for key, (value, ttl) in sorted(counters.items()):
            if value is not None and value < 0:
                run.finding(f"Redis counter {key} is {value} after the run ({ttl / 1000:.0f} s left in its window): "
                            "more places given back than taken")

        events = sorted((e for t in fault_threads for e in t.events), key=lambda e: e["down_at"])
        data = analyse(records, events, readyz.samples, metrics.samples, workers, writes, run)
        pg_faults = [f for f in data["faults"] if f["dependency"] == "postgres"]
        worst = [f.get("readyz_503_max_ms") for f in pg_faults]
        readyz_ok = all(f.get("readyz_first_503_after") is not None for f in pg_faults) and \
            all(x is not None and x <= 1000 for x in worst)
        readyz_value = ("slowest 503 " + ", ".join("—" if x is None else f"{x:.0f} ms" for x in worst)
                        + "; first 503 after " + ", ".join("—" if f.get("readyz_first_503_after") is None
                                                           else f"{f['readyz_first_503_after']:.2f} s" for f in pg_faults))
        data.update({
            "command": command_line(), "started_at": started_at, "seed": SEED, "seconds": SECONDS, "threads": THREADS,
            "client_timeout": CLIENT_TIMEOUT, "database_timeout": DATABASE_TIMEOUT, "binary": os.path.relpath(BIN, ROOT),
            "commit": git_commit(), "machine": machine(cluster), "writes": writes, "mix": {"threads": THREADS - LOGIN_THREADS, "weights": MIX},
            "login_mix": {"threads": LOGIN_THREADS, "weights": LOGIN_MIX},
            "plan": plan, "readyz_samples": len(readyz.samples), "metrics_samples": len(metrics.samples),
            "answers_5xx": run.bodies_5xx, "redis_counters_after": counters,
            "login_ip_counter": [(round(t, 2), v) for t, v in counter.samples], "answers_503_without_retry_after": run.no_retry_after,
        })
        if run.no_retry_after:
            run.finding(f"{run.no_retry_after} answers 503 without Retry-After")
        for f in data["faults"]:
            if f.get("db_2xx_while_down"):
                run.finding(f"answered 2xx while PostgreSQL was down ({f['down_at']:.2f}–{f['start_began']:.2f} s): "
                            + ", ".join(f"{n}× {k}" for k, n in f["db_2xx_while_down"].items()), f["down_at"])
        bound = DATABASE_TIMEOUT + 1
        for r in records:
            if r[3] - r[2] > bound:
                fault = next((f for f in data["faults"] if f["down_at"] - bound <= r[2] <= (f["up_at"] or 1e9)), None)
                where = (f", {r[2] - fault['down_at']:+.2f} s from {fault['dependency']} going down at {fault['down_at']:.2f} s"
                         if fault else ", outside any fault")
                run.finding(f"{r[0]} → {r[1]} after {(r[3] - r[2]) * 1000:.0f} ms (over {bound:g} s){where}", r[2])
        errors = brama_log_errors(brama_log)
        data["brama_log_errors"] = errors
        expected = ("Redis rate limiter unavailable",)
        for message, n in errors.items():
            if not any(e in message for e in expected):
                run.finding(f"brama logged {n}× at ERROR: {message}", 1e9)
        data["findings"] = [(f"t = {t:.2f} s: " if t < 1e9 else "") + text for t, text in sorted(run.findings)[:40]]
        if len(run.findings) > 40:
            data["findings"].append(f"… and {len(run.findings) - 40} more (target/chaos.json has the first 40)")
        data["targets"] = targets(data, (readyz_value, readyz_ok))
        data["ok"] = all(t["ok"] for t in data["targets"] if t.get("gating", True))
        if not STANDARD:
            data["note"] = "a partial run (CHAOS_SECONDS, CHAOS_THREADS or CHAOS_BIN set): not the standard figures"

        section = chaos_report.render(data)
        print("\n" + "\n".join(section), flush=True)
        out = os.path.join(target_dir, "chaos.json" if STANDARD else "chaos-partial.json")
        with open(out, "w") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
        requests_csv = os.path.join(target_dir, "chaos-requests.csv")
        with open(requests_csv, "w") as f:
            f.write("kind,status,start_s,end_s\n")
            f.writelines(f"{k},{st},{a:.4f},{b:.4f}\n" for k, st, a, b in records)
        print(f"chaos: wrote {os.path.relpath(out, ROOT)}, every request in target/chaos-requests.csv "
              "(brama's log: target/chaos-brama.log)")
        if STANDARD:
            path = os.path.join(ROOT, "BENCHMARKS.md")
            text = open(path).read() if os.path.exists(path) else ""
            with open(path, "w") as f:
                f.write(chaos_report.replace_section(text, section))
            print("chaos: updated the chaos section of BENCHMARKS.md")
        else:
            print("chaos: a partial run; BENCHMARKS.md left alone")
        print("chaos: " + ("every target met" if data["ok"] else "TARGET MISSED: " + "; ".join(
            t["name"] for t in data["targets"] if not t["ok"] and t.get("gating", True))), flush=True)
        return 0 if data["ok"] else 1
    finally:
        if run is not None:
            run.stop.set()
        for t in threads:
            if isinstance(t, CounterPoller):
                t.stop.set()
        for t in threads:
            if isinstance(t, FaultThread):
                t.join(90)  # a start under way finishes, so that the cleanup below stops it
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if redis is not None:
            redis.kill()
        if cluster is not None:
            cluster.crash(check=False)
            try:
                shutil.copy(os.path.join(cluster.dir, "server.log"), os.path.join(target_dir, "chaos-postgres.log"))
            except OSError:
                pass
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("chaos: interrupted; brama, PostgreSQL, Redis and the temporary directory are gone", file=sys.stderr)
        sys.exit(130)
