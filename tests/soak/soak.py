#!/usr/bin/env python3
"""Reliability proofs for cronq: crash soak, several daemons, disk full, lock
contention. Python 3.11 standard library only; talks to the real admin socket
(JSON lines over AF_UNIX) of the real daemon (examples/recording_daemon.rs).

    soak.py crash  --bin PATH [--jobs 100000] [--kills 30]
    soak.py multi  --bin PATH [--seconds 600]
    soak.py multi  --bin PATH --postgres [--jobs 20000] [--seconds 600]
    soak.py diskfull --bin PATH          (root: mounts a tmpfs)
    soak.py lock   --bin PATH [--hold 10]

Each run works in a fresh temp dir (kept with --keep), prints its figures as
one JSON line prefixed `RESULT `, and exits 1 naming every violated property.
docs/RELIABILITY.md says what each proves. tests/soak.rs runs the CI sizes.
"""

import argparse
import collections
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

# JOB_MAX_WORKERS of every daemon started here; SOAK_WORKERS overrides.
WORKERS = int(os.environ.get("SOAK_WORKERS", 5))
# Jobs that may have run without a committed outcome, which a kill can make
# run twice: the running ones, and up to AHEAD_BATCHES (8, src/queue/mod.rs)
# x JOB_BATCH_SIZE (50, the default) whose outcomes are queued.
RERUN_BOUND = WORKERS + 8 * 50


class Refused(Exception):
    """The daemon answered ok=false."""

    def __init__(self, answer):
        super().__init__(json.dumps(answer))
        self.answer = answer


class Daemon:
    """One recording_daemon process on `dir`, restartable."""

    def __init__(self, binary, dir, env, name="d", prefix=()):
        self.binary, self.dir, self.name = binary, dir, name
        # Run through this, e.g. a UTS namespace with a host name of its own.
        self.prefix = list(prefix)
        self.socket = os.path.join(dir, f"{name}.sock")
        self.log = os.path.join(dir, f"{name}.log")
        self.env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "warn",
            "CRON_TZ": "UTC",
            "CRONQ_SOCKET": self.socket,
            "CRONQ_CRONS": os.path.join(dir, "no-crons.toml"),
            "JOB_MAX_WORKERS": str(WORKERS),
            "JOB_BACKOFF_BASE_MS": "50",
            "JOB_BACKOFF_MAX_MS": "200",
            **env,
        }
        self.proc = None
        self.starts = 0

    def start(self, limit=30.0):
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                self.prefix + [self.binary],
                cwd=self.dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.starts += 1
        deadline = time.monotonic() + limit
        while True:
            try:
                if self.request({"cmd": "ping"}, timeout=2).get("ok"):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode} at start-up; see {self.log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name} did not answer in {limit} s; see {self.log}")
            time.sleep(0.02)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, limit=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(limit)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "timeout"
        return None if self.proc is None else self.proc.returncode

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def request(self, obj, timeout=60):
        """One request on a fresh connection; returns the answer object."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.socket)
            s.sendall(json.dumps(obj).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("the daemon closed the connection without an answer")
                buf += chunk
        return json.loads(buf)

    def ok(self, obj, timeout=60):
        answer = self.request(obj, timeout)
        if not answer.get("ok"):
            raise Refused(answer)
        return answer

    def queue(self):
        return self.ok({"cmd": "status"})["queue"]

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def job_spec(i, fail_rate, rng, max_delay=5):
    fail = rng.random() < fail_rate
    spec = {
        "name": f"soak-{i}",
        "priority": rng.choice([-10, 0, 0, 0, 5, 10]),
        "payload": {"type": "record", "data": {"fail": fail}},
    }
    if fail:
        spec["payload"]["options"] = {"retry_count": 1}
    if max_delay and rng.random() < 0.2:
        spec["delay"] = rng.randint(1, max_delay)
    return spec, fail


def read_records(path):
    """[(job_id, attempt, window)], window = number of kill markers before."""
    out, window = [], 0
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# kill"):
                window += 1
            elif line:
                job_id, attempt = line.split(" ")[:2]
                out.append((job_id, int(attempt), window))
    return out


def db_check(path):
    """integrity_check and the stored rows, read with Python's own sqlite3."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        rows = {
            r[0]: {"status": r[1], "attempts": r[2], "last_error": r[3], "name": r[4]}
            for r in conn.execute("SELECT id, status, attempts, last_error, name FROM queues")
        }
        return integrity, rows
    finally:
        conn.close()


def wait_drained(d, limit, what="the queue to drain"):
    deadline = time.monotonic() + limit
    while True:
        q = d.queue()
        if q["pending"] + q["scheduled"] + q["running"] == 0:
            return q
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}: {q}")
        time.sleep(0.2)


def finish(result, problems):
    result["problems"] = problems
    print("RESULT " + json.dumps(result, sort_keys=True), flush=True)
    for p in problems:
        print("FAILED: " + p, file=sys.stderr)
    return 1 if problems else 0


# --------------------------------------------------------------------------
# crash: kill -9 at random moments while jobs are enqueued and processed.


def crash(args, dir):
    rng = random.Random(args.seed)
    db = os.path.join(dir, "cronq.db")
    record = os.path.join(dir, "record.txt")
    d = Daemon(args.bin, dir, {"CRONQ_DB": db, "RECORD_FILE": record})
    d.start()

    enqueued = {}  # id -> fail
    lock = threading.Lock()  # held around one enqueue request, and around a kill
    done = threading.Event()
    errors = []

    def enqueuer():
        try:
            i = 0
            while i < args.jobs:
                n = min(args.batch, args.jobs - i)
                specs = [job_spec(i + k, 0.05, rng) for k in range(n)]
                with lock:
                    answer = d.ok({"cmd": "enqueue", "jobs": [s for s, _ in specs]})
                for (_, fail), job in zip(specs, answer["jobs"]):
                    enqueued[job["id"]] = fail
                i += n
                # Keep the daemon busy but let it work between batches.
                time.sleep(args.pace)
        except Exception as e:  # noqa: BLE001 - reported as a problem
            errors.append(f"enqueue: {e!r}")
        finally:
            done.set()

    started = time.monotonic()
    t = threading.Thread(target=enqueuer)
    t.start()
    kills, queued_at_kill, restart_ms = 0, [], []
    while kills < args.kills:
        time.sleep(rng.uniform(args.kill_min, args.kill_max))
        with lock:
            try:
                status = d.ok({"cmd": "status"}, timeout=10)
                q = status["queue"]
            except Exception as e:  # noqa: BLE001
                errors.append(f"status before kill {kills + 1}: {e!r}")
                break
            if done.is_set() and q["pending"] + q["scheduled"] + q["running"] == 0:
                break
            d.kill9()
            kills += 1
            queued_at_kill.append(q["pending"] + q["running"])
            with open(record, "a") as f:
                f.write(f"# kill {kills}\n")
            t0 = time.monotonic()
            d.start()
            restart_ms.append(round((time.monotonic() - t0) * 1000))
    t.join()
    wait_drained(d, args.drain_limit)
    work_s = time.monotonic() - started
    stop_status = d.stop()
    integrity, rows = db_check(db)

    records = read_records(record)
    by_job = collections.defaultdict(list)
    for job_id, attempt, window in records:
        by_job[job_id].append((attempt, window))

    problems = list(errors)
    if kills < args.kills:
        problems.append(f"only {kills} kills happened while there was work (wanted {args.kills}); "
                        "use a shorter --kill-max or more --jobs")
    if integrity != "ok":
        problems.append(f"integrity_check: {integrity}")
    if stop_status != 0:
        problems.append(f"the daemon's final SIGTERM exit was {stop_status}")
    lost, dead, dead_without_error, dead_not_failing, leftover = [], 0, 0, 0, 0
    for job_id, fail in enqueued.items():
        row = rows.get(job_id)
        if row is not None and row["status"] != "dead":
            leftover += 1
        if row is not None and row["status"] == "dead":
            dead += 1
            if not row["last_error"]:
                dead_without_error += 1
            if not fail:
                dead_not_failing += 1
        elif job_id not in by_job:
            lost.append(job_id)
    unknown = [j for j in by_job if j not in enqueued]
    # A duplicate: a second recording of a job that does not fail on purpose.
    # It is explained only by a kill between the two recordings (the first
    # attempt's completion was lost); count them per kill window.
    dups_per_kill = collections.Counter()
    dups_same_window = 0
    duplicate_recordings = 0
    failing_extra = 0
    for job_id, recs in by_job.items():
        if enqueued.get(job_id, False):
            # Attempts 1 and 2 are both recorded by design; more is a bug.
            failing_extra += max(0, len(recs) - 2)
            continue
        recs.sort()
        duplicate_recordings += len(recs) - 1
        for (a1, w1), (a2, w2) in zip(recs, recs[1:]):
            if w1 == w2 or a2 <= a1:
                dups_same_window += 1
            else:
                dups_per_kill[w1 + 1] += 1
    if lost:
        problems.append(f"{len(lost)} jobs were neither recorded nor dead, e.g. {lost[:5]}")
    if leftover:
        problems.append(f"{leftover} jobs are still stored and not dead after the drain")
    if dead_without_error:
        problems.append(f"{dead_without_error} dead jobs have no error")
    if unknown:
        problems.append(f"{len(unknown)} recorded ids were never enqueued, e.g. {unknown[:5]}")
    if dups_same_window:
        problems.append(f"{dups_same_window} duplicate recordings without a kill in between")
    if failing_extra:
        problems.append(f"failing jobs were recorded {failing_extra} times more than their 2 attempts")
    worst = max(dups_per_kill.values(), default=0)
    if worst > RERUN_BOUND:
        problems.append(f"a kill caused {worst} duplicates, more than JOB_MAX_WORKERS={WORKERS} "
                        f"+ 8 x JOB_BATCH_SIZE: "
                        f"{dict(sorted(dups_per_kill.items()))}")
    return finish({
        "test": "crash",
        "jobs": len(enqueued),
        "failing_jobs": sum(enqueued.values()),
        "kills": kills,
        "ready_or_running_at_kill": queued_at_kill,
        "restart_ms_max": max(restart_ms, default=0),
        "recordings": len(records),
        "duplicates": duplicate_recordings,
        "duplicates_max_per_kill": worst,
        "duplicates_per_kill": [dups_per_kill.get(k, 0) for k in range(1, kills + 1)],
        "dead": dead,
        "dead_not_failing_on_purpose": dead_not_failing,
        "lost": len(lost),
        "integrity": integrity,
        "seconds": round(work_s, 1),
    }, problems)


# --------------------------------------------------------------------------
# multi: three daemons on one database, enqueueing and processing.


def multi(args, dir):
    if args.postgres:
        return multi_postgres(args, dir)
    rng = random.Random(args.seed)
    db = os.path.join(dir, "cronq.db")
    record = os.path.join(dir, "record.txt")
    crons = os.path.join(dir, "crons.toml")
    with open(crons, "w") as f:
        f.write('[cron.tick]\nschedule = "* * * * *"\ntype = "record"\n')
    daemons = [Daemon(args.bin, dir, {"CRONQ_DB": db, "RECORD_FILE": record, "CRONQ_CRONS": crons},
                      name=f"d{i}") for i in range(3)]
    for d in daemons:
        d.start()
    started_ms = int(time.time() * 1000)
    enqueued = {}
    i = 0
    deadline = time.monotonic() + args.seconds
    errors = []
    while time.monotonic() < deadline:
        d = rng.choice(daemons)
        n = rng.randint(1, args.batch)
        specs = [job_spec(i + k, 0.05, rng) for k in range(n)]
        try:
            answer = d.ok({"cmd": "enqueue", "jobs": [s for s, _ in specs]})
        except Exception as e:  # noqa: BLE001
            errors.append(f"enqueue to {d.name}: {e!r}")
            break
        for (_, fail), job in zip(specs, answer["jobs"]):
            enqueued[job["id"]] = fail
        i += n
        time.sleep(rng.uniform(0, 2 * args.pace))
    ended_ms = int(time.time() * 1000)
    wait_drained(daemons[0], args.drain_limit)
    # Each process's own counters: the work was shared, not done by one.
    processed = []
    for d in daemons:
        stats = d.ok({"cmd": "stats"})["types"].get("record", {})
        processed.append(stats.get("succeeded", 0) + stats.get("failed", 0))
    stops = [d.stop() for d in daemons]
    integrity, rows = db_check(db)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    runs = conn.execute(
        "SELECT scheduled_for, count(*), group_concat(job_id), group_concat(instance) "
        "FROM cron_runs WHERE cron_id = 'tick' AND trigger = 'schedule' GROUP BY scheduled_for"
    ).fetchall()
    conn.close()

    records = read_records(record)
    by_job = collections.defaultdict(list)
    for job_id, attempt, _ in records:
        by_job[job_id].append(attempt)
    problems = list(errors)
    if integrity != "ok":
        problems.append(f"integrity_check: {integrity}")
    if any(s != 0 for s in stops):
        problems.append(f"SIGTERM exits: {stops}")
    twice = [j for j, a in by_job.items() if len(a) != len(set(a))]
    if twice:
        problems.append(f"{len(twice)} jobs had one attempt recorded twice, e.g. {twice[:5]}")
    not_once = [j for j, f in enqueued.items() if not f and len(by_job.get(j, [])) != 1]
    if not_once:
        problems.append(f"{len(not_once)} jobs were not recorded exactly once, e.g. {not_once[:5]}")
    failing_wrong = [j for j, f in enqueued.items()
                     if f and (sorted(by_job.get(j, [])) != [1, 2] or rows.get(j, {}).get("status") != "dead")]
    if failing_wrong:
        problems.append(f"{len(failing_wrong)} failing jobs did not run attempts 1 and 2 and die")
    # Cron: one run per scheduled minute, each minute the daemons ran through.
    minutes = [r[0] for r in runs]
    if any(r[1] != 1 for r in runs):
        problems.append(f"a cron minute has several runs: {[r for r in runs if r[1] != 1]}")
    expected = [m for m in range((started_ms // 60000 + 1) * 60000, ended_ms, 60000)]
    missing = [m for m in expected if m not in minutes]
    if missing:
        problems.append(f"cron minutes without a run: {missing}")
    cron_jobs = [r[2] for r in runs if r[2]]
    cron_not_once = [j for j in cron_jobs if len(by_job.get(j, [])) != 1]
    if cron_not_once:
        problems.append(f"cron jobs not recorded exactly once: {cron_not_once}")
    unknown = [j for j in by_job if j not in enqueued and j not in cron_jobs]
    if unknown:
        problems.append(f"{len(unknown)} recorded ids were never enqueued, e.g. {unknown[:5]}")
    per_instance = collections.Counter(r[3] for r in runs)
    return finish({
        "test": "multi",
        "daemons": len(daemons),
        "attempts_by_daemon": processed,
        "seconds": args.seconds,
        "jobs": len(enqueued),
        "failing_jobs": sum(enqueued.values()),
        "recordings": len(records),
        "duplicates": sum(len(a) - len(set(a)) for a in by_job.values()),
        "cron_minutes": len(runs),
        "cron_minutes_expected": len(expected),
        "cron_runs_by_instance": len(per_instance),
        "integrity": integrity,
    }, problems)


# --------------------------------------------------------------------------
# multi --postgres: three daemons, as on three hosts, on one PostgreSQL
# database; one of them killed, the server restarted, mid-run.


def pg_bin():
    """The directory of initdb, pg_ctl and psql: PATH's, else the newest
    /usr/lib/postgresql/*/bin."""
    for d in os.environ.get("PATH", "").split(":"):
        initdb = os.path.join(d, "initdb")
        if os.path.exists(initdb):
            real = os.path.dirname(os.path.realpath(initdb))
            if all(os.path.exists(os.path.join(real, b)) for b in ("pg_ctl", "psql")):
                return real
    found = []
    for v in os.listdir("/usr/lib/postgresql") if os.path.isdir("/usr/lib/postgresql") else []:
        b = os.path.join("/usr/lib/postgresql", v, "bin")
        if os.path.exists(os.path.join(b, "initdb")) and v.isdigit():
            found.append((int(v), b))
    return max(found)[1] if found else None


class Postgres:
    """A server of its own on a temp dir, on 127.0.0.1, trusting local
    logins; run as the postgres user when this runs as root (initdb
    refuses root)."""

    def __init__(self, dir):
        self.bin = pg_bin()
        if self.bin is None:
            raise SystemExit("PostgreSQL (initdb, pg_ctl, psql) is not installed")
        # Its own temp dir: the soak's is closed to the postgres user.
        self.dir = tempfile.mkdtemp(prefix="cronq-soak-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.as_user = []
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def run(self, argv):
        out = subprocess.run(self.as_user + argv, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr.strip()}; "
                             f"see {self.log}")
        return out

    def start(self):
        self.run([os.path.join(self.bin, "initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8", "--locale=C"])
        self.pg_ctl("start")

    def pg_ctl(self, action):
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        return self.run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log, "-o", opts,
                         "-m", "fast", "-w", action])

    def url(self, db="postgres"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}?sslmode=disable"

    def psql(self, sql, db="cronq"):
        out = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                              self.url(db), "-c", sql], check=True, capture_output=True, text=True)
        return [line.split("|") for line in out.stdout.splitlines() if line]

    def stop(self):
        self.pg_ctl("stop")


def read_tagged(path):
    """[(job_id, attempt, tag, ms)] from `JOB_ID ATTEMPT TAG MS` lines."""
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 4:
                out.append((parts[0], int(parts[1]), parts[2], int(parts[3])))
    return out


def separate_hosts():
    """A UTS namespace per daemon, each with a host name of its own, so the
    daemons judge each other as nodes of other hosts do: by heartbeat only.
    Needs root and unshare; without them they share this host's name and a
    killed one is found by its pid instead."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None


def multi_postgres(args, dir):
    rng = random.Random(args.seed)
    pg = Postgres(dir)
    pg.start()
    try:
        return multi_postgres_on(args, dir, rng, pg)
    finally:
        try:
            pg.stop()
        except SystemExit as e:
            print(f"stopping the server: {e}", file=sys.stderr)
        if args.keep:
            print(f"kept the server's dir {pg.dir}", file=sys.stderr)
        else:
            shutil.rmtree(pg.dir, ignore_errors=True)


def multi_postgres_on(args, dir, rng, pg):
    pg.psql("CREATE DATABASE cronq", db="postgres")
    record = os.path.join(dir, "record.txt")
    crons = os.path.join(dir, "crons.toml")
    with open(crons, "w") as f:
        f.write('[cron.tick]\nschedule = "* * * * *"\ntype = "record"\n')
    hosts = separate_hosts()
    timeout_min = 1
    daemons = []
    for i in range(3):
        name = f"d{i}"
        prefix = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', f"soak-{name}"] if hosts else []
        env = {"CRONQ_DATABASE_URL": pg.url("cronq"), "RECORD_FILE": record, "RECORD_TAG": name,
               "CRONQ_CRONS": crons, "JOB_RESERVATION_TIMEOUT": str(timeout_min),
               "CRONQ_DB": os.path.join(dir, f"{name}-unused.db")}
        daemons.append(Daemon(args.bin, dir, env, name=name, prefix=prefix))
    for d in daemons:
        d.start()
    ids = {d.name: d.ok({"cmd": "status"})["instance"] for d in daemons}
    started = time.monotonic()
    started_ms = int(time.time() * 1000)

    # When the kill and the restart come. The restart is timed to take the
    # server away across a whole minute, so the cron's run for it is due
    # while the server is down; the kill comes early, so that what the
    # killed daemon held is released (a heartbeat older than the timeout)
    # while jobs still flow.
    until_minute = 60 - (time.time() % 60)
    # Just before the minute: a fast restart takes a few hundred ms.
    restart_in = until_minute - 0.1
    while restart_in < 1:
        restart_in += 60
    if restart_in > args.seconds:
        restart_in = args.seconds * 0.6
    kill_in = args.kill_at
    if abs(kill_in - restart_in) < 4:
        kill_in = restart_in + 4

    victim = daemons[1]
    lock = threading.Lock()
    enqueued = {}
    errors = []
    done = threading.Event()
    retried = [0]

    def enqueuer():
        try:
            i = 0
            total = args.jobs - args.burst
            per_s = total / args.seconds
            while i < total:
                n = min(rng.randint(1, args.batch), total - i)
                specs = [job_spec(i + k, 0.05, rng) for k in range(n)]
                # Paced to spread the jobs over the run.
                ahead = i / per_s - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
                for attempt in range(100):
                    with lock:
                        d = rng.choice([d for d in daemons if d.alive()])
                        try:
                            answer = d.ok({"cmd": "enqueue", "jobs": [s for s, _ in specs]})
                            break
                        except Refused as e:
                            # The server was restarting: nothing was stored.
                            if e.answer.get("error", {}).get("code") != "unavailable":
                                raise
                            retried[0] += 1
                    time.sleep(0.1)
                else:
                    raise RuntimeError("enqueues were refused for 10 s after the restart")
                for (_, fail), job in zip(specs, answer["jobs"]):
                    enqueued[job["id"]] = fail
                i += n
        except Exception as e:  # noqa: BLE001 - reported as a problem
            errors.append(f"enqueue: {e!r}")
        finally:
            done.set()

    t = threading.Thread(target=enqueuer)
    t.start()
    events = sorted([(kill_in, "kill"), (restart_in, "restart")])
    kill = {}
    restart = {}
    for at, what in events:
        time.sleep(max(0, at - (time.monotonic() - started)))
        with lock:
            if what == "kill":
                # A burst of slower jobs (20 ms each) first, so the victim
                # holds jobs (running, and claimed ahead) when it dies: the
                # paced flow alone leaves it idle most of the time.
                specs = [job_spec(10_000_000 + k, 0.05, rng) for k in range(args.burst)]
                for spec, _ in specs:
                    spec["payload"]["data"]["sleep_ms"] = 20
                answer = victim.ok({"cmd": "enqueue", "jobs": [s for s, _ in specs]})
                for (_, fail), job in zip(specs, answer["jobs"]):
                    enqueued[job["id"]] = fail
                time.sleep(0.05)
                kill["ms"] = int(time.time() * 1000)
                victim.kill9()
                # What it held, and its last heartbeat: the reservations that
                # stay valid until that heartbeat is older than the timeout.
                held = pg.psql(f"SELECT id FROM queues WHERE status = 'running' AND reserved_by = '{ids['d1']}'")
                hb = pg.psql("SELECT (extract(epoch FROM heartbeat_at) * 1000)::bigint FROM instances "
                             f"WHERE id = '{ids['d1']}'")
                kill["held"] = [r[0] for r in held]
                kill["heartbeat_ms"] = int(hb[0][0]) if hb else kill["ms"]
                kill["at_s"] = round(time.monotonic() - started, 1)
            else:
                q = daemons[0].queue()
                t0 = time.monotonic()
                restart["at_ms"] = int(time.time() * 1000)
                pg.pg_ctl("restart")
                restart["took_ms"] = round((time.monotonic() - t0) * 1000)
                restart["at_s"] = round(time.monotonic() - started, 1)
                restart["ready_or_running_before"] = q["pending"] + q["running"]
    t.join()
    ended_ms = int(time.time() * 1000)
    live = [d for d in daemons if d.alive()]
    # The victim's jobs come back once its heartbeat is older than the
    # timeout, at the next heartbeat of a live node.
    deadline = time.monotonic() + args.drain_limit
    while True:
        q = live[0].queue()
        if q["pending"] + q["scheduled"] + q["running"] == 0:
            break
        if time.monotonic() > deadline:
            errors.append(f"the queue did not drain in {args.drain_limit} s: {q}")
            break
        time.sleep(0.25)
    drained_s = round(time.monotonic() - started, 1)
    processed = []
    for d in live:
        stats = d.ok({"cmd": "stats"})["types"].get("record", {})
        processed.append(stats.get("succeeded", 0) + stats.get("failed", 0))
    status_dead = live[0].queue()["dead"]
    last_ms = int(time.time() * 1000)
    stops = [d.stop() for d in live]

    rows = {r[0]: r[1] for r in pg.psql("SELECT id, status FROM queues")}
    runs = pg.psql("SELECT (extract(epoch FROM scheduled_for) * 1000)::bigint, count(*), "
                   "string_agg(coalesce(job_id, ''), ','), min(instance) FROM cron_runs "
                   "WHERE cron_id = 'tick' AND trigger = 'schedule' GROUP BY 1 ORDER BY 1")
    records = read_tagged(record)
    by_job = collections.defaultdict(list)
    for job_id, attempt, tag, ms in records:
        by_job[job_id].append((attempt, tag, ms))

    problems = list(errors)
    if any(s != 0 for s in stops):
        problems.append(f"SIGTERM exits: {stops}")
    # A job recorded twice: allowed only for a job the killed daemon
    # recorded before its kill and another ran again once the killed one's
    # reservation had lapsed: its last heartbeat older than the timeout, as
    # nodes of other hosts judge it; on one host, its process gone.
    if hosts:
        lapse_ms = kill.get("heartbeat_ms", 0) + timeout_min * 60_000
    else:
        lapse_ms = kill.get("ms", 0)
    twice_while_valid, reruns, same_attempt = [], [], []
    for job_id, recs in by_job.items():
        attempts = [a for a, _, _ in recs]
        if len(attempts) != len(set(attempts)):
            same_attempt.append(job_id)
        if len(recs) < 2 or enqueued.get(job_id, False):
            continue
        recs.sort(key=lambda r: r[2])
        for (a1, tag1, ms1), (a2, tag2, ms2) in zip(recs, recs[1:]):
            if tag1 == "d1" and ms1 <= kill.get("ms", 0) and ms2 >= lapse_ms and a2 > a1:
                reruns.append(job_id)
            else:
                twice_while_valid.append((job_id, recs))
    if same_attempt:
        problems.append(f"{len(same_attempt)} jobs had one attempt recorded twice, e.g. {same_attempt[:5]}")
    if twice_while_valid:
        problems.append(f"{len(twice_while_valid)} jobs were recorded twice while a reservation was valid, "
                        f"e.g. {twice_while_valid[:3]}")
    lost = [j for j, fail in enqueued.items() if not fail and j not in by_job]
    if lost:
        problems.append(f"{len(lost)} jobs were never recorded, e.g. {lost[:5]}")
    failing_wrong = [j for j, f in enqueued.items()
                     if f and (not by_job.get(j) or rows.get(j) != "dead"
                               or not {a for a, _, _ in by_job[j]} <= {1, 2})]
    if failing_wrong:
        problems.append(f"{len(failing_wrong)} failing jobs did not end dead after their attempts, "
                        f"e.g. {failing_wrong[:5]}")
    left = [j for j, st in rows.items() if st != "dead"]
    if left:
        problems.append(f"{len(left)} jobs are still stored and not dead: {left[:5]}")
    dead_not_failing = [j for j, st in rows.items() if st == "dead" and not enqueued.get(j, False)]
    if dead_not_failing:
        problems.append(f"{len(dead_not_failing)} jobs that do not fail are dead: {dead_not_failing[:5]}")
    if status_dead != sum(1 for st in rows.values() if st == "dead"):
        problems.append(f"status counts {status_dead} dead jobs, the table holds "
                        f"{sum(1 for st in rows.values() if st == 'dead')}")
    # The killed daemon's jobs ran on the others, after its reservation lapsed.
    held = kill.get("held", [])
    finished_elsewhere = [j for j in held if any(tag != "d1" and ms >= lapse_ms for _, tag, ms in by_job.get(j, []))
                          or rows.get(j) == "dead"]
    if len(finished_elsewhere) != len(held):
        problems.append(f"of {len(held)} jobs the killed daemon held, only {len(finished_elsewhere)} "
                        "finished on the others after its reservation lapsed")
    if not held:
        problems.append("the killed daemon held no job when it was killed (kill earlier, or more jobs)")
    # Cron: one run per scheduled minute, each minute the daemons ran
    # through, including the one the restart took the server away for;
    # each minute's job recorded once (or rerun by the rule above).
    minutes = [int(r[0]) for r in runs]
    several = [r for r in runs if r[1] != "1"]
    if several:
        problems.append(f"a cron minute has several runs: {several}")
    expected = list(range((started_ms // 60000 + 1) * 60000, last_ms, 60000))
    missing = [m for m in expected if m not in minutes]
    if missing:
        problems.append(f"cron minutes without a run: {missing}")
    cron_jobs = [r[2] for r in runs if r[2]]
    cron_not_once = [j for j in cron_jobs if not by_job.get(j)
                     or (len(by_job[j]) > 1 and j not in reruns)]
    if cron_not_once:
        problems.append(f"cron jobs not recorded once: {cron_not_once}")
    restart_minute = (restart.get("at_ms", 0) // 60000 + 1) * 60000
    restart_minute_fired = restart_minute in minutes
    unknown = [j for j in by_job if j not in enqueued and j not in cron_jobs]
    if unknown:
        problems.append(f"{len(unknown)} recorded ids were never enqueued, e.g. {unknown[:5]}")
    return finish({
        "test": "multi",
        "backend": "postgres",
        "separate_hosts": hosts,
        "daemons": len(daemons),
        "jobs": len(enqueued),
        "failing_jobs": sum(enqueued.values()),
        "seconds": args.seconds,
        "drained_after_s": drained_s,
        "attempts_by_live_daemon": processed,
        "recordings": len(records),
        "kill": {"at_s": kill.get("at_s"), "held": len(held), "finished_elsewhere": len(finished_elsewhere),
                 "reruns": len(reruns), "lapse_after_kill_s": round((lapse_ms - kill.get("ms", 0)) / 1000, 1)},
        "restart": {**restart,
                    "minute_due_while_down": restart.get("at_ms", 0) < restart_minute
                    <= restart.get("at_ms", 0) + restart.get("took_ms", 0),
                    "that_minute_fired": restart_minute_fired},
        "enqueues_retried_after_restart": retried[0],
        "duplicates_while_valid": len(twice_while_valid),
        "lost": len(lost),
        "cron_minutes": len(runs),
        "cron_minutes_expected": len(expected),
    }, problems)


# --------------------------------------------------------------------------
# diskfull: the database on a full tmpfs.


def fill(path):
    """Writes zeros to `path` until the file system is full."""
    chunk = b"\0" * (64 * 1024)
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        # Whatever is left is smaller than a chunk; take it too.
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def diskfull(args, dir):
    if os.geteuid() != 0:
        print("SKIPPED: diskfull needs root to mount a tmpfs", file=sys.stderr)
        return 77
    mnt = os.path.join(dir, "small")
    os.mkdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt], check=True)
    d = cold = None
    try:
        db = os.path.join(mnt, "cronq.db")
        d = Daemon(args.bin, dir, {"CRONQ_DB": db, "RECORD_FILE": os.path.join(dir, "record.txt")})
        d.start()
        rng = random.Random(args.seed)
        stored = 0
        for b in range(4):
            specs = [job_spec(b * 500 + k, 0, rng, 0)[0] for k in range(500)]
            for s in specs:
                s["delay"] = 3600  # stays stored, so nothing is deleted meanwhile
            d.ok({"cmd": "enqueue", "jobs": specs})
            stored += 500
        filler = os.path.join(mnt, "filler")
        fill(filler)
        # SQLite reuses WAL space it already has, so the first enqueues may
        # still fit: go on until one is refused.
        accepted_while_full, refusal, refused_after_ms = 0, None, None
        for k in range(200):
            spec = {"name": f"full-{k}", "delay": 3600, "payload": {"type": "record", "data": {}}}
            t0 = time.monotonic()
            answer = d.request({"cmd": "enqueue", **spec})
            if answer.get("ok"):
                accepted_while_full += 1
                stored += 1
                continue
            refusal, refused_after_ms = answer, round((time.monotonic() - t0) * 1000)
            break
        problems = []
        if refusal is None:
            problems.append("200 enqueues on a full disk were all accepted")
        elif refusal["error"]["code"] != "unavailable" or "disk is full" not in refusal["error"]["message"]:
            problems.append(f"the refusal is not unavailable/disk is full: {refusal}")
        # Reads keep working.
        reads = {}
        for name, req in [("status", {"cmd": "status"}), ("jobs", {"cmd": "jobs", "limit": 10}),
                          ("stats", {"cmd": "stats"})]:
            answer = d.request(req)
            reads[name] = bool(answer.get("ok"))
            if not answer.get("ok"):
                problems.append(f"{name} failed while the disk was full: {answer}")
        q = d.queue()
        if q["scheduled"] != stored:
            problems.append(f"status says {q['scheduled']} scheduled jobs, {stored} were stored")
        full_integrity, rows = db_check(db)
        if full_integrity != "ok" or len(rows) != stored:
            problems.append(f"while full: integrity {full_integrity}, {len(rows)} rows of {stored}")
        # Free the space: enqueue works again, without a restart.
        os.remove(filler)
        resumed = d.request({"cmd": "enqueue", "name": "after", "delay": 3600,
                             "payload": {"type": "record", "data": {}}})
        if not resumed.get("ok"):
            problems.append(f"enqueue after freeing space failed: {resumed}")
        else:
            stored += 1
        # And a job that runs now is processed.
        now_id = d.ok({"cmd": "enqueue", "name": "now", "payload": {"type": "record", "data": {}}})["job"]["id"]
        deadline = time.monotonic() + 20
        # Until it is found succeeded in the history.
        while d.request({"cmd": "job", "id": now_id}).get("job", {}).get("status") != "succeeded":
            if time.monotonic() > deadline:
                problems.append("a job enqueued after the disk was freed did not run")
                break
            time.sleep(0.05)
        if not d.alive():
            problems.append("the daemon died")
        stop_status = d.stop()
        if stop_status != 0:
            problems.append(f"SIGTERM exit {stop_status}")
        integrity, rows = db_check(db)
        if integrity != "ok":
            problems.append(f"integrity_check: {integrity}")
        if len(rows) != stored:
            problems.append(f"{len(rows)} rows stored, expected {stored}")
        # Cold: with no process holding the database open, its -wal and -shm
        # files are gone, and a WAL database cannot even be read without
        # creating them. A start on a full disk must fail with a message
        # naming the database, promptly; reads by another program fail too.
        # (A read-write connection, the last to close, removes -wal and -shm;
        # the read-only one of db_check left them.)
        rw = sqlite3.connect(db)
        rw.execute("SELECT count(*) FROM queues").fetchone()
        rw.close()
        fill(filler)
        cold_files = sorted(os.listdir(mnt))
        try:
            db_check(db)
            cold_read = "ok"
        except sqlite3.Error as e:
            cold_read = f"{type(e).__name__}: {e}"
        cold = Daemon(args.bin, dir, {"CRONQ_DB": db, "RECORD_FILE": os.path.join(dir, "record.txt")},
                      name="cold")
        try:
            cold.start(limit=30)
            cold_start = "started"
            cold.stop()
        except SystemExit as e:
            cold_start = str(e)
        cold_message = cold.log_text().strip().splitlines()[-1:] or [""]
        if cold_start == "started":
            problems.append("the daemon started on a full disk without its WAL files (unexpected)")
        elif "database" not in cold_message[0]:
            problems.append(f"a start on a full disk failed without a message about the database: {cold_message}")
        os.remove(filler)
        cold.start(limit=30)
        if cold.queue()["scheduled"] != stored:
            problems.append(f"after a cold restart: {cold.queue()} (expected {stored} scheduled)")
        cold.stop()
        return finish({
            "cold_files": cold_files,
            "cold_read_while_full": cold_read,
            "cold_start_while_full": cold_message[0],
            "test": "diskfull",
            "stored_before_fill": 2000,
            "accepted_while_full": accepted_while_full,
            "refusal": refusal,
            "refused_after_ms": refused_after_ms,
            "reads_while_full": reads,
            "python_read_while_full": full_integrity,
            "rows_at_end": len(rows),
            "integrity": integrity,
        }, problems)
    finally:
        for p in (d, cold):
            if p is not None and p.alive():
                p.proc.kill()
                p.proc.wait()
        subprocess.run(["umount", mnt], check=False)


# --------------------------------------------------------------------------
# lock: another process holds the write lock.


def lock(args, dir):
    rng = random.Random(args.seed)
    db = os.path.join(dir, "cronq.db")
    record = os.path.join(dir, "record.txt")
    crons = os.path.join(dir, "crons.toml")
    with open(crons, "w") as f:
        f.write('[cron.tick]\nschedule = "* * * * *"\ntype = "record"\n')
    d = Daemon(args.bin, dir, {"CRONQ_DB": db, "RECORD_FILE": record, "LOG_LEVEL": "info",
                               "CRONQ_CRONS": crons})
    d.start()
    if args.cross_minute:
        # Hold the lock across a minute boundary, so `tick` is due meanwhile.
        time.sleep((60 - time.time() % 60 - 3) % 60)
    enqueued = set()
    # Work that is due before, during and after the lock.
    specs = []
    for k in range(600):
        s = job_spec(k, 0, rng, 0)[0]
        s["delay"] = k % (int(args.hold) + 4)
        specs.append(s)
    for job in d.ok({"cmd": "enqueue", "jobs": specs})["jobs"]:
        enqueued.add(job["id"])
    time.sleep(0.5)

    holder = sqlite3.connect(db, isolation_level=None, timeout=10)
    holder.execute("BEGIN IMMEDIATE")
    held_at = time.monotonic()
    held_from_ms = int(time.time() * 1000)
    answers = []

    def client(k):
        t0 = time.monotonic()
        try:
            a = d.request({"cmd": "enqueue", "name": f"during-{k}", "payload": {"type": "record", "data": {}}})
        except Exception as e:  # noqa: BLE001
            a = {"ok": False, "error": {"code": "exception", "message": repr(e)}}
        answers.append((round(time.monotonic() - t0, 2), a))

    threads = []
    for k in range(4):
        th = threading.Thread(target=client, args=(k,))
        th.start()
        threads.append(th)
        time.sleep(args.hold / 5)
    t0 = time.monotonic()
    status_during = d.request({"cmd": "status"})
    status_ms = round((time.monotonic() - t0) * 1000)
    time.sleep(max(0, args.hold - (time.monotonic() - held_at)))
    holder.execute("ROLLBACK")
    holder.close()
    held_until_ms = int(time.time() * 1000)
    for th in threads:
        th.join()
    problems = []
    for took, a in answers:
        if a.get("ok"):
            enqueued.add(a["job"]["id"])
        elif a["error"]["code"] != "unavailable" or took < 4.5:
            problems.append(f"an enqueue during the lock answered {a} after {took} s")
    if not status_during.get("ok"):
        problems.append(f"status during the lock failed: {status_during}")
    # Processing resumes by itself; new work too.
    after = [job_spec(1000 + k, 0, rng, 0)[0] for k in range(50)]
    for job in d.ok({"cmd": "enqueue", "jobs": after})["jobs"]:
        enqueued.add(job["id"])
    wait_drained(d, 60, "processing to resume after the lock")
    status = d.ok({"cmd": "status"})
    if not d.alive():
        problems.append("the daemon died")
    records = read_records(record)
    recorded = collections.Counter(r[0] for r in records)
    missing = [j for j in enqueued if recorded[j] == 0]
    if any(n > 1 for n in recorded.values()):
        problems.append("a job was recorded twice without a kill")
    if missing:
        problems.append(f"{len(missing)} jobs not recorded, e.g. {missing[:5]}")
    log = d.log_text()
    if "panicked" in log:
        problems.append("a panic is in the log")
    # All workers still serve: a burst of short jobs uses them all.
    stop_status = d.stop()
    if stop_status != 0:
        problems.append(f"SIGTERM exit {stop_status}")
    integrity, _ = db_check(db)
    if integrity != "ok":
        problems.append(f"integrity_check: {integrity}")
    # Every minute that came while the lock was held still fired, once.
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    fired = dict(conn.execute(
        "SELECT scheduled_for, job_id FROM cron_runs WHERE cron_id = 'tick' AND trigger = 'schedule'"))
    conn.close()
    locked_minutes = list(range((held_from_ms // 60000 + 1) * 60000, held_until_ms, 60000))
    for m in locked_minutes:
        if not fired.get(m) or recorded[fired[m]] != 1:
            problems.append(f"the tick due at {m} during the lock did not fire and run once: {fired.get(m)}")
    return finish({
        "test": "lock",
        "cron_minutes_during_lock": len(locked_minutes),
        "hold_s": args.hold,
        "enqueues_during_lock": [(t, a.get("ok") or a["error"]["code"]) for t, a in answers],
        "status_during_lock_ms": status_ms,
        "jobs": len(enqueued),
        "recorded": len(recorded),
        "duplicates": sum(n - 1 for n in recorded.values()),
        "workers_after": status["workers"],
        "claim_warnings": log.count("could not claim jobs"),
        "outcome_write_errors": log.count("could not record the job's outcome"),
        "integrity": integrity,
    }, problems)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("test", choices=["crash", "multi", "diskfull", "lock"])
    p.add_argument("--bin", required=True, help="target/debug/examples/recording_daemon")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("SOAK_JOBS", 100_000)))
    p.add_argument("--kills", type=int, default=int(os.environ.get("SOAK_KILLS", 30)))
    p.add_argument("--kill-min", type=float, default=0.1, help="seconds between kills, at least")
    p.add_argument("--kill-max", type=float, default=0.4, help="seconds between kills, at most")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--pace", type=float, default=0.05, help="seconds between enqueue batches")
    p.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    p.add_argument("--hold", type=float, default=10.0)
    p.add_argument("--postgres", action="store_true",
                   help="multi: three daemons on a PostgreSQL server of its own; one killed, the server restarted")
    p.add_argument("--burst", type=int, default=1000,
                   help="multi --postgres: of --jobs, how many are enqueued at once just before the kill")
    p.add_argument("--kill-at", type=float, default=5.0,
                   help="multi --postgres: seconds into the run when one daemon is killed")
    p.add_argument("--cross-minute", action="store_true",
                   help="lock: hold the lock across a minute boundary (waits up to a minute first)")
    p.add_argument("--drain-limit", type=float, default=600)
    p.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", time.time_ns() % 1_000_000)))
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = p.parse_args()
    args.bin = os.path.abspath(args.bin)
    dir = tempfile.mkdtemp(prefix=f"cronq-soak-{args.test}-")
    print(f"{args.test}: seed {args.seed}, dir {dir}", file=sys.stderr, flush=True)
    code = 1
    try:
        code = {"crash": crash, "multi": multi, "diskfull": diskfull, "lock": lock}[args.test](args, dir)
    finally:
        if args.keep or code == 1:
            print(f"kept {dir}", file=sys.stderr)
        else:
            shutil.rmtree(dir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
