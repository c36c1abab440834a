"""Load driver and checks of scripts/cluster-test (run by that script; not a test of the suite).

One run: create tenants, owners and API tokens (through the CLI on web1), sessions (through the API, placed on
the two simulators by the portal), pair them at the simulators, sign the owners in, then for --duration seconds
drive a mixed closed-loop load through the load balancer:

- API sends (`POST /waha/sessions/{id}/send`, one Idempotency-Key per message, retried with the same key on a
  connection error, 5xx or 409 until the portal answers 200),
- inbound messages injected at the simulators (`/_sim/sessions/{name}/inbound`, every 8th with an image) at a
  fixed rate (--inbound-rate, open loop: customers do not wait for the portal),
  which the simulators post as signed webhooks to the load balancer's /webhooks/waha,
- page views of the signed-in owners (dashboard, inbox, message log, contacts).

Halfway through, `--kill` takes hosts down: a web host by kill -9 of its processes, a worker host by taking its
veth down and then kill -9. After the load the killed web host is started again (a replaced host), the run
waits until the portal has caught up, then checks:

- events: every injected message is stored exactly once, the unread count of each chat equals the messages
  injected into it (an event applied twice would count twice), every webhook event row is done, no event id
  twice;
- sends: every confirmed send is exactly one portal row and exactly one message at the simulators (counted
  there by its unique text), and every one reached READ (its ack events arrived);
- media: every stored inbound image is read through each web host directly, with the stored sha256.

`--summary` prints the runs side by side (throughput of the cluster against the one-host run) and exits 1 when a
check of any run failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import psycopg
import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from portal.jobs.schedule import SCHEDULE
from portal.services.outbox import STALE_SENDING

# A send whose web host died between storing its row and calling WAHA is sent by the reconcile job once the row
# is stale: waiting for the portal to catch up must outlast that (the row's age limit, then one job interval).
RECOVERY_SECONDS = STALE_SENDING.total_seconds() + next(
    job["interval"] for job in SCHEDULE if job["id"] == "sends-reconcile"
)

PASSWORD = "cluster-owner-password-1"
TENANTS = ("acme", "globex")
SESSIONS_PER_TENANT = 2
SEND_THREADS = 4
INBOUND_THREADS = 4
PAGE_THREADS = 2
PAGES = ("/", "/inbox/", "/messages/", "/contacts/")
CONTACTS_PER_SESSION = 40


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S", time.gmtime()), "[cluster-load]", msg, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.done: Counter[str] = Counter()

    def ok(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latency[kind].append(seconds * 1000)
            self.done[kind] += 1

    def error(self, kind: str, what: str) -> None:
        with self.lock:
            self.errors[f"{kind}:{what}"] += 1


class Host:
    """A portal host of the cluster (a network namespace wp-NAME) as the script set it up."""

    def __init__(self, name: str, work: str, root: str) -> None:
        self.name, self.work, self.root = name, work, root

    def env(self) -> list[str]:
        with open(os.path.join(self.work, f"{self.name}.env")) as handle:
            return [line.rstrip("\n") for line in handle if line.strip()]

    def run(self, *args: str) -> str:
        cmd = ["ip", "netns", "exec", f"wp-{self.name}", "env", *self.env(), f"{self.root}/.venv/bin/flask"]
        done = subprocess.run([*cmd, "--app", "wsgi", *args], cwd=self.root, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}")
        return done.stdout

    def kill(self) -> None:
        pids = subprocess.run(["ip", "netns", "pids", f"wp-{self.name}"], capture_output=True, text=True).stdout
        for pid in pids.split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass

    def link(self, up: bool) -> None:
        subprocess.run(["ip", "link", "set", f"wpv-{self.name}", "up" if up else "down"], check=True)

    def start_web(self) -> None:
        logfile = open(os.path.join(self.work, "logs", f"{self.name}.log"), "a")  # noqa: SIM115 (kept by the child)
        cmd = ["ip", "netns", "exec", f"wp-{self.name}", "env", *self.env(), "PORT=8000"]
        cmd += [f"{self.root}/.venv/bin/gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
        subprocess.Popen(cmd, cwd=self.root, stdout=logfile, stderr=logfile, start_new_session=True)


CPU_HOSTS = ("lb", "db", "web1", "web2", "wk1", "wk2", "sched", "sim1", "sim2")
TICK = os.sysconf("SC_CLK_TCK")


def host_cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the live processes of each host (their reaped children included)."""
    out: dict[str, float] = {}
    for host in CPU_HOSTS:
        pids = subprocess.run(["ip", "netns", "pids", f"wp-{host}"], capture_output=True, text=True).stdout.split()
        total = 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        out[host] = total / TICK
    return out


class Costs:
    """What the load cost: CPU per host, PostgreSQL transactions and WAL, Redis commands and memory."""

    def __init__(self, db: str, redis_url: str) -> None:
        self.db, self.redis_url = db, redis_url

    def sample(self) -> dict[str, Any]:
        import redis

        with psycopg.connect(self.db, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, xact_commit, tup_inserted, tup_updated, "
                "pg_database_size(current_database()) FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
            assert row is not None
        info = redis.Redis.from_url(self.redis_url).info()
        return {
            "cpu": host_cpu_seconds(),
            "wal_bytes": int(row[0]),
            "commits": row[1],
            "rows_inserted": row[2],
            "rows_updated": row[3],
            "db_bytes": row[4],
            "redis_commands": info["total_commands_processed"],
            "redis_memory": info["used_memory"],
            "time": time.monotonic(),
        }

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        # a host killed on the way lost its processes' counts: it shows what its new processes used (at least 0)
        cpu = {
            h: round(max(0.0, after["cpu"][h] - before["cpu"].get(h, 0.0)), 2) for h in after["cpu"] if after["cpu"][h]
        }
        out = {k: after[k] - before[k] for k in ("wal_bytes", "commits", "rows_inserted", "rows_updated", "db_bytes")}
        out["redis_commands"] = after["redis_commands"] - before["redis_commands"]
        out["redis_memory_end"] = after["redis_memory"]
        out["seconds"] = round(after["time"] - before["time"], 1)
        out["cpu_seconds"] = cpu
        return out


class Browser:
    """A signed-in user; cookies handled by hand because production cookies are Secure and the LB speaks HTTP."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.cookies: dict[str, str] = {}

    def _keep(self, response: requests.Response) -> None:
        for name, value in response.cookies.items():
            self.cookies[name] = value or ""

    def get(self, path: str, timeout: float = 20) -> requests.Response:
        response = self.http.get(self.base + path, headers=self._headers(), timeout=timeout, allow_redirects=False)
        self._keep(response)
        return response

    def _headers(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}

    def sign_in(self, email: str) -> None:
        page = self.get("/login")
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
        if not match:
            raise RuntimeError(f"no CSRF token on /login ({page.status_code})")
        form = {"csrf_token": match.group(1), "email": email, "password": PASSWORD}
        response = self.http.post(
            self.base + "/login", data=form, headers=self._headers(), timeout=20, allow_redirects=False
        )
        self._keep(response)
        if response.status_code not in (302, 303):
            raise RuntimeError(f"sign-in of {email} answered {response.status_code}")


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lb = args.lb
        self.sims = dict(item.split("=", 1) for item in args.sim)
        self.webs = dict(item.split("=", 1) for item in args.web)
        self.rec = Recorder()
        self.stop = threading.Event()
        self.tokens: dict[str, str] = {}
        self.sessions: list[dict[str, Any]] = []  # {id, tenant, external, sim}
        self.browsers: list[Browser] = []
        self.sent: list[dict[str, Any]] = []  # confirmed sends
        self.unconfirmed: list[dict[str, Any]] = []
        self.inbound: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.lock = threading.Lock()
        self.sim_http = requests.Session()

    # ------------------------------------------------------------ set-up
    def setup(self) -> None:
        web1 = Host("web1", self.args.work, self.args.root)
        for slug in TENANTS:
            web1.run("tenants", "create", "--slug", slug, "--name", slug.title(), "--send-rate", "60000")
            email = f"owner@{slug}.example.com"
            web1.run("users", "create", "--email", email, "--tenant", slug, "--role", "owner", "--password", PASSWORD)
            self.tokens[slug] = (
                web1.run("tokens", "create", "--tenant", slug, "--name", "load").strip().splitlines()[-1]
            )
            browser = Browser(self.lb)
            browser.sign_in(email)
            self.browsers.append(browser)
        with psycopg.connect(self.args.db) as conn:
            for slug in TENANTS:
                for i in range(SESSIONS_PER_TENANT):
                    r = requests.post(
                        f"{self.lb}/waha/sessions",
                        json={"sessionName": f"s{i}"},
                        headers={**self._auth(slug), "Idempotency-Key": f"create-{slug}-{i}"},
                        timeout=30,
                    )
                    r.raise_for_status()
                    session_id = r.json()["id"]
                    row = conn.execute(
                        "SELECT s.external_name, w.name FROM waha_sessions s JOIN waha_servers w ON w.id = s.server_id "
                        "WHERE s.id = %s",
                        (session_id,),
                    ).fetchone()
                    assert row is not None
                    self.sessions.append({"id": session_id, "tenant": slug, "external": row[0], "sim": row[1]})
        for s in self.sessions:
            deadline = time.time() + 20
            while True:
                r = self.sim_http.post(f"{self.sims[s['sim']]}/_sim/sessions/{s['external']}/scan", json={}, timeout=10)
                if r.status_code < 300 or time.time() > deadline:
                    break
                time.sleep(0.3)
            r.raise_for_status()
        for s in self.sessions:
            deadline = time.time() + 30
            while True:
                r = requests.post(
                    f"{self.lb}/waha/sessions/{s['id']}/sync", headers=self._auth(s["tenant"]), timeout=30
                )
                if r.ok and r.json().get("status") == "WORKING":
                    break
                if time.time() > deadline:
                    raise RuntimeError(f"session {s['id']} never reached WORKING: {r.status_code} {r.text[:200]}")
                time.sleep(0.5)
        placed = Counter(s["sim"] for s in self.sessions)
        log(f"{len(self.sessions)} sessions WORKING, placed {dict(placed)}; {len(self.browsers)} owners signed in")

    def _auth(self, slug: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[slug]}"}

    # ------------------------------------------------------------ load
    def sender(self, n: int) -> None:
        http = requests.Session()
        rng = random.Random(n)
        while not self.stop.is_set():
            s = rng.choice(self.sessions)
            key = uuid.uuid4().hex
            body = {"to": f"+4917{rng.randrange(10**8):08d}", "text": f"cl-{key}"}
            headers = {**self._auth(s["tenant"]), "Idempotency-Key": key}
            first = time.monotonic()
            deadline = first + 90
            while True:
                t0 = time.monotonic()
                try:
                    r = http.post(f"{self.lb}/waha/sessions/{s['id']}/send", json=body, headers=headers, timeout=30)
                    status = r.status_code
                except requests.RequestException as exc:
                    status, r = type(exc).__name__, None
                if status == 200 and r is not None:
                    self.rec.ok("send", time.monotonic() - t0)
                    with self.lock:
                        self.sent.append(
                            {
                                "session": s["id"],
                                "key": key,
                                "text": body["text"],
                                "id": r.json()["id"],
                                "replayed": t0 != first,  # the answer to a retry after an error
                                "answered": r.json().get("status"),
                            }
                        )
                    if t0 != first:
                        self.rec.ok("send_with_retries", time.monotonic() - first)
                    break
                self.rec.error("send", str(status))
                if time.monotonic() > deadline or status in (400, 401, 403, 404, 422):
                    with self.lock:
                        self.unconfirmed.append({"session": s["id"], "key": key, "text": body["text"], "last": status})
                    break
                time.sleep(0.5)

    def injector(self, n: int) -> None:
        """Inbound messages at a fixed rate (customers do not wait for the portal): open loop."""
        http = requests.Session()
        rng = random.Random(1000 + n)
        count = 0
        interval = INBOUND_THREADS / self.args.inbound_rate
        due = time.monotonic() + rng.random() * interval
        while not self.stop.is_set():
            due = max(due + interval, time.monotonic() - 1.0)  # never more than a second of catching up
            pause = due - time.monotonic()
            if pause > 0 and self.stop.wait(pause):
                break
            s = rng.choice(self.sessions)
            sender = f"4915{rng.randrange(CONTACTS_PER_SESSION):08d}"
            body: dict[str, Any] = {"from": sender, "text": f"in-{uuid.uuid4().hex}"}
            count += 1
            if count % 8 == 0:
                body["media"] = {"mimetype": "image/png"}
            t0 = time.monotonic()
            try:
                r = http.post(f"{self.sims[s['sim']]}/_sim/sessions/{s['external']}/inbound", json=body, timeout=10)
            except requests.RequestException as exc:
                self.rec.error("inbound", type(exc).__name__)
                continue
            if r.status_code != 201:
                self.rec.error("inbound", str(r.status_code))
                continue
            self.rec.ok("inbound", time.monotonic() - t0)
            with self.lock:
                self.inbound.append({"session": s["id"], "chat": f"{sender}@c.us", "id": r.json()["id"]})

    def pager(self, n: int) -> None:
        browser = self.browsers[n % len(self.browsers)]
        i = 0
        while not self.stop.is_set():
            path = PAGES[i % len(PAGES)]
            i += 1
            t0 = time.monotonic()
            try:
                r = browser.get(path)
            except requests.RequestException as exc:
                self.rec.error("page", type(exc).__name__)
                time.sleep(0.2)
                continue
            if r.status_code == 200:
                self.rec.ok("page", time.monotonic() - t0)
            else:
                self.rec.error("page", str(r.status_code))
                time.sleep(0.2)

    def cost_phases(self, seconds: float) -> dict[str, Any]:
        """Each kind of work alone for a few seconds, then until the portal has caught up, with what it cost on
        every host: CPU per page view, per send (its four ack events included), per inbound message (two events)."""
        costs = Costs(self.args.db, self.args.redis)
        kinds = (
            ("page", self.pager, PAGE_THREADS),
            ("send", self.sender, SEND_THREADS),
            ("inbound", self.injector, INBOUND_THREADS),
        )
        out: dict[str, Any] = {}
        for kind, target, count in kinds:
            self.stop.clear()
            done_before = self.rec.done[kind]
            before = costs.sample()
            threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
            for t in threads:
                t.start()
            time.sleep(seconds)
            self.stop.set()
            for t in threads:
                t.join()
            with psycopg.connect(self.args.db, autocommit=True) as conn:
                self.settle(conn, limit=120)
            spent = Costs.delta(before, costs.sample())
            n = max(1, self.rec.done[kind] - done_before)
            out[kind] = {
                "n": n,
                "seconds": spent["seconds"],
                "cpu_ms": {h: round(v * 1000 / n, 2) for h, v in spent["cpu_seconds"].items()},
                "commits": round(spent["commits"] / n, 2),
                "wal_bytes": round(spent["wal_bytes"] / n),
                "redis_commands": round(spent["redis_commands"] / n, 1),
            }
            log(f"cost of one {kind}: {out[kind]}")
        self.stop.clear()
        self.rec = Recorder()
        return out

    def load(self) -> dict[str, Any]:
        threads = [threading.Thread(target=self.sender, args=(i,)) for i in range(SEND_THREADS)]
        threads += [threading.Thread(target=self.injector, args=(i,)) for i in range(INBOUND_THREADS)]
        threads += [threading.Thread(target=self.pager, args=(i,)) for i in range(PAGE_THREADS)]
        start = time.monotonic()
        for t in threads:
            t.start()
        killed: list[str] = []
        kill_at = None
        if self.args.kill:
            time.sleep(self.args.duration / 2)
            kill_at = round(time.monotonic() - start, 1)
            for name in self.args.kill.split():
                host = Host(name, self.args.work, self.args.root)
                if name.startswith("wk"):
                    host.link(False)  # cut off first: its jobs in flight can neither finish nor report
                    time.sleep(1)
                host.kill()
                killed.append(name)
            log(f"killed {', '.join(killed)} at {kill_at}s")
            time.sleep(max(0.0, self.args.duration - (time.monotonic() - start)))
        else:
            time.sleep(self.args.duration)
        self.stop.set()
        load_seconds = time.monotonic() - start
        for t in threads:
            t.join()
        for name in killed:
            if name.startswith("web"):
                Host(name, self.args.work, self.args.root).start_web()
                log(f"{name} started again (a replaced host)")
        return {"seconds": round(load_seconds, 1), "killed": killed, "kill_at": kill_at}

    # ------------------------------------------------------------ settle and check
    def settle(self, conn: psycopg.Connection, limit: float = 600, stall: float | None = None) -> float:
        """Wait until every event is processed, every injected message stored and every send acked READ; give up
        after `limit` seconds, or when nothing moved for `stall` seconds (slow workers keep moving; by default
        30 s more than the portal takes to send what a dead web host left unsent)."""
        stall = RECOVERY_SECONDS + 30 if stall is None else stall
        start = time.monotonic()
        seen: tuple[int, ...] = ()
        moved = start
        sent_ids = [m["id"] for m in self.sent]
        inbound_ids = [m["id"] for m in self.inbound]
        while True:
            pending = conn.execute("SELECT count(*) FROM webhook_events WHERE status NOT IN ('done', 'ignored')")
            left = pending.fetchone()[0]  # type: ignore[index]
            stored = conn.execute(
                "SELECT count(*) FROM messages WHERE direction = 'in' AND waha_message_id = ANY(%s)", (inbound_ids,)
            ).fetchone()[0]  # type: ignore[index]
            read = conn.execute(
                "SELECT count(*) FROM messages WHERE id = ANY(%s) AND status = 'READ'", (sent_ids,)
            ).fetchone()[0]  # type: ignore[index]
            media = conn.execute(
                "SELECT count(*) FROM messages WHERE direction = 'in' AND media->>'status' = 'pending'"
            ).fetchone()[0]  # type: ignore[index]
            if left == 0 and stored == len(inbound_ids) and read == len(sent_ids) and media == 0:
                return time.monotonic() - start
            now = time.monotonic()
            if (left, stored, read, media) != seen:
                seen, moved = (left, stored, read, media), now
            if now - start > limit or now - moved > stall:
                log(
                    f"not settled after {now - start:.0f}s: {left} events open, {stored}/{len(inbound_ids)} stored, "
                    f"{read}/{len(sent_ids)} READ, {media} media pending"
                )
                return now - start
            time.sleep(1)

    def check_events(self, conn: psycopg.Connection) -> dict[str, Any]:
        ids = [m["id"] for m in self.inbound]
        rows = conn.execute(
            "SELECT waha_message_id, count(*) FROM messages WHERE direction = 'in' AND waha_message_id = ANY(%s) "
            "GROUP BY waha_message_id",
            (ids,),
        ).fetchall()
        found = dict(rows)
        missing = [i for i in ids if i not in found]
        twice = [i for i, c in found.items() if c > 1]
        expected_unread: Counter[tuple[str, str]] = Counter((m["session"], m["chat"]) for m in self.inbound)
        unread = {
            (r[0], r[1]): r[2]
            for r in conn.execute(
                "SELECT session_id, chat_id, unread_count FROM chats WHERE session_id = ANY(%s)",
                ([s["id"] for s in self.sessions],),
            ).fetchall()
        }
        wrong_unread = {
            f"{k[0][:8]}/{k[1]}": (unread.get(k), v) for k, v in expected_unread.items() if unread.get(k) != v
        }
        events = conn.execute(
            "SELECT count(*), count(DISTINCT event_id), count(*) FILTER (WHERE status NOT IN ('done', 'ignored')) "
            "FROM webhook_events"
        ).fetchone()
        assert events is not None
        ok = not missing and not twice and not wrong_unread and events[0] == events[1] and events[2] == 0
        return {
            "ok": ok,
            "injected": len(ids),
            "missing": len(missing),
            "stored_twice": len(twice),
            "chats": len(expected_unread),
            "chats_wrong_unread": len(wrong_unread),
            "wrong_unread_sample": dict(list(wrong_unread.items())[:3]),
            "webhook_events": events[0],
            "distinct_event_ids": events[1],
            "events_not_done": events[2],
        }

    def check_sends(self, conn: psycopg.Connection) -> dict[str, Any]:
        keys = [m["key"] for m in self.sent] + [m["key"] for m in self.unconfirmed]
        rows = conn.execute(
            "SELECT idempotency_key, count(*), max(status) FROM messages WHERE direction = 'out' "
            "AND idempotency_key = ANY(%s) GROUP BY idempotency_key",
            (keys,),
        ).fetchall()
        portal = {r[0]: r[1] for r in rows}
        at_sims: Counter[str] = Counter()
        for s in self.sessions:
            r = self.sim_http.get(f"{self.sims[s['sim']]}/_sim/sessions/{s['external']}/messages", timeout=30)
            r.raise_for_status()
            for m in r.json():
                body = m.get("body") or m.get("text") or ""
                if body.startswith("cl-"):
                    at_sims[body] += 1
        duplicated_at_sims = [t for t, c in at_sims.items() if c > 1]
        confirmed_missing_at_sims = [m for m in self.sent if at_sims.get(m["text"], 0) == 0]
        rows_not_one = [m for m in self.sent if portal.get(m["key"]) != 1]
        unconfirmed_rows = sum(portal.get(m["key"], 0) for m in self.unconfirmed)
        unconfirmed_at_sims = sum(at_sims.get(m["text"], 0) for m in self.unconfirmed)
        not_read = conn.execute(
            "SELECT count(*) FROM messages WHERE id = ANY(%s) AND status <> 'READ'", ([m["id"] for m in self.sent],)
        ).fetchone()[0]  # type: ignore[index]
        ok = (
            not duplicated_at_sims
            and not confirmed_missing_at_sims
            and not rows_not_one
            and not_read == 0
            and unconfirmed_rows == unconfirmed_at_sims  # a send the client gave up on is either both or neither
        )
        return {
            "ok": ok,
            "confirmed": len(self.sent),
            "gave_up": len(self.unconfirmed),
            "at_simulators": sum(at_sims.values()),
            "duplicated_at_simulators": len(duplicated_at_sims),
            "confirmed_missing_at_simulators": len(confirmed_missing_at_sims),
            "missing_confirmed_by_a_replay": [
                {"key": m["key"], "answered": m["answered"]} for m in confirmed_missing_at_sims if m["replayed"]
            ],
            "confirmed_without_exactly_one_row": len(rows_not_one),
            "not_read": not_read,
        }

    def check_media(self, conn: psycopg.Connection) -> dict[str, Any]:
        if self.args.media_skip:
            return {"ok": None, "not_run": self.args.media_skip}
        rows = conn.execute(
            "SELECT m.id, m.media->>'sha256', t.slug FROM messages m JOIN tenants t ON t.id = m.tenant_id "
            "WHERE m.direction = 'in' AND m.media->>'status' = 'stored' ORDER BY m.id"
        ).fetchall()
        results: Counter[str] = Counter()
        for web, base in self.webs.items():
            for message_id, sha, slug in rows:
                try:
                    r = requests.get(f"{base}/waha/messages/{message_id}/media", headers=self._auth(slug), timeout=20)
                except requests.RequestException as exc:
                    results[f"{web}:{type(exc).__name__}"] += 1
                    continue
                good = r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha
                results[f"{web}:{'ok' if good else r.status_code}"] += 1
        bad = {k: v for k, v in results.items() if not k.endswith(":ok")}
        states = dict(
            conn.execute(
                "SELECT media->>'status', count(*) FROM messages WHERE direction = 'in' AND media IS NOT NULL "
                "AND waha_message_id = ANY(%s) GROUP BY 1",
                ([m["id"] for m in self.inbound],),
            ).fetchall()
        )
        not_stored = {k: v for k, v in states.items() if k != "stored"}
        return {
            "ok": bool(rows) and not bad and not not_stored,
            "stored_media": len(rows),
            "not_stored": not_stored,
            "reads": dict(results),
        }

    def webhook_latency(self) -> list[float]:
        durations: list[float] = []
        for base in self.sims.values():
            r = self.sim_http.get(f"{base}/_sim/webhooks", timeout=30)
            durations += [e["duration_ms"] for e in r.json() if e.get("ok")]
        return durations

    def execute(self) -> dict[str, Any]:
        self.setup()
        unit_costs = self.cost_phases(self.args.cost_phases) if self.args.cost_phases else None
        costs = Costs(self.args.db, self.args.redis)
        before = costs.sample()
        load = self.load()
        with psycopg.connect(self.args.db, autocommit=True) as conn:
            settle = self.settle(conn)
            spent = Costs.delta(before, costs.sample())
            spent["webhook_events"] = conn.execute("SELECT count(*) FROM webhook_events").fetchone()[0]  # type: ignore[index]
            spent["table_bytes"] = {
                name: {"rows": rows, "bytes": size}
                for name, rows, size in conn.execute(
                    "SELECT relname, n_live_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables "
                    "WHERE relname IN ('messages', 'webhook_events', 'chats', 'contacts')"
                ).fetchall()
            }
            checks = {
                "events": self.check_events(conn),
                "sends": self.check_sends(conn),
                "media": self.check_media(conn),
            }
        hook_ms = self.webhook_latency()
        seconds = load["seconds"]
        lat = {
            k: {"n": len(v), "p50": percentile(v, 0.5), "p99": percentile(v, 0.99)} for k, v in self.rec.latency.items()
        }
        lat["webhook_delivery"] = {"n": len(hook_ms), "p50": percentile(hook_ms, 0.5), "p99": percentile(hook_ms, 0.99)}
        done = self.rec.done
        throughput = {k: round(done[k] / seconds, 1) for k in ("send", "inbound", "page")}
        # inbound messages come at a fixed rate; what the portal's capacity decides is sends + pages (closed loop)
        throughput["total"] = round(sum(done[k] for k in ("send", "page")) / seconds, 1)
        return {
            "name": self.args.name,
            "webs": list(self.webs),
            "load": load,
            "settle_seconds": round(settle, 1),
            "throughput_per_s": throughput,
            "latency_ms": lat,
            "errors": dict(self.rec.errors),
            "checks": checks,
            "costs": spent,
            "unit_costs": unit_costs,
            "ops": {k: done[k] for k in ("send", "inbound", "page")},
            "send_attempts": done["send"] + sum(v for k, v in self.rec.errors.items() if k.startswith("send:")),
        }


# ---------------------------------------------------------------- printing
def verdict(check: dict[str, Any]) -> str:
    if check.get("ok") is None:
        return f"NOT RUN ({check.get('not_run')})"
    return "PASS" if check["ok"] else "FAIL"


def print_run(result: dict[str, Any]) -> None:
    name = result["name"]
    load = result["load"]
    killed = f", killed {'+'.join(load['killed'])} at {load['kill_at']}s" if load["killed"] else ""
    print(
        f"== {name}: web hosts {'+'.join(result['webs'])}, load {load['seconds']}s{killed}, "
        f"caught up {result['settle_seconds']}s after"
    )
    e = result["checks"]["events"]
    print(
        f"  events  {verdict(e)}: {e['injected']} injected, {e['missing']} missing, {e['stored_twice']} stored twice, "
        f"{e['chats_wrong_unread']}/{e['chats']} chats with a wrong unread count, {e['webhook_events']} webhook "
        f"events ({e['distinct_event_ids']} distinct ids, {e['events_not_done']} not done)"
    )
    s = result["checks"]["sends"]
    print(
        f"  sends   {verdict(s)}: {s['confirmed']} confirmed, {s['at_simulators']} at the simulators, "
        f"{s['duplicated_at_simulators']} duplicated there, {s['confirmed_missing_at_simulators']} missing there, "
        f"{s['confirmed_without_exactly_one_row']} without exactly one row, {s['not_read']} not READ, "
        f"{s['gave_up']} given up by the client"
    )
    for m in s.get("missing_confirmed_by_a_replay", []):
        print(
            f"          never sent: key {m['key']} was answered 200 ({m['answered']}) on its retry after the web host "
            "died during the first call, and nothing sends it later"
        )
    m = result["checks"]["media"]
    detail = (
        f": {m['stored_media']} stored images, not stored {m.get('not_stored') or 0}, reads {m['reads']}"
        if m.get("ok") is not None
        else ""
    )
    print(f"  media   {verdict(m)}{detail}")
    parts = []
    for kind in ("send", "send_with_retries", "inbound", "page", "webhook_delivery"):
        v = result["latency_ms"].get(kind)
        if v and v["n"]:
            parts.append(f"{kind} p50 {v['p50']:.0f} / p99 {v['p99']:.0f} ms (n={v['n']})")
    print("  latency " + "; ".join(parts))
    t = result["throughput_per_s"]
    print(
        f"  throughput {t['total']}/s (sends + pages, closed loop): sends {t['send']}/s, pages {t['page']}/s; "
        f"inbound {t['inbound']}/s (fixed rate)"
    )
    if result["errors"]:
        print(f"  errors seen by clients (then retried): {result['errors']}")
    print_unit_costs(result)
    c = result.get("costs")
    if c:
        cpu = ", ".join(f"{h} {v:.1f}" for h, v in c["cpu_seconds"].items())
        events = max(1, c["webhook_events"])
        print(f"  cost over {c['seconds']}s (load + catching up): CPU seconds {cpu}")
        print(
            f"  cost: {c['webhook_events']} webhook events, {result['ops']['send']} sends, "
            f"{result['ops']['page']} pages; "
            f"PostgreSQL {c['commits']} commits, {c['wal_bytes'] / 1e6:.1f} MB WAL ({c['wal_bytes'] / events:.0f} B "
            f"per event), database +{c['db_bytes'] / 1e6:.1f} MB; Redis {c['redis_commands']} commands "
            f"({c['redis_commands'] / events:.1f} per event), {c['redis_memory_end'] / 1e6:.1f} MB used at the end"
        )


def load_result(path: str) -> dict[str, Any]:
    with open(path) as handle:
        return json.load(handle)


def print_unit_costs(result: dict[str, Any]) -> None:
    units = result.get("unit_costs")
    if not units:
        return
    for kind, u in units.items():
        cpu = ", ".join(f"{h} {v:.1f}" for h, v in u["cpu_ms"].items() if v >= 0.05)
        print(
            f"  unit cost of one {kind} (alone, n={u['n']}): CPU ms {cpu}; PostgreSQL {u['commits']} commits, "
            f"{u['wal_bytes']} B WAL; Redis {u['redis_commands']} commands"
        )


def summary(paths: list[str], baseline: str | None) -> int:
    runs = [load_result(p) for p in paths]
    base = load_result(baseline) if baseline else None
    print()
    print("==== cluster-test summary")
    for r in [base, *runs] if base else runs:
        print_run(r)
    failed = [
        f"{r['name']}:{name}"
        for r in ([base, *runs] if base else runs)
        for name, c in r["checks"].items()
        if c.get("ok") is False
    ]
    if base:
        for r in runs:
            ratio = r["throughput_per_s"]["total"] / max(0.1, base["throughput_per_s"]["total"])
            print(
                f"  throughput {r['name']} / {base['name']}: {ratio:.2f}x "
                f"({r['throughput_per_s']['total']}/s against {base['throughput_per_s']['total']}/s)"
            )
    print(f"RESULT: {'FAIL (' + ', '.join(failed) + ')' if failed else 'PASS'}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--summary", nargs="+", help="print these result files and exit")
    parser.add_argument("--baseline", help="result file of the one-host run (with --summary)")
    parser.add_argument("--name", default="run")
    parser.add_argument("--lb")
    parser.add_argument("--db")
    parser.add_argument("--sim", action="append", default=[], help="NAME=URL of a simulator")
    parser.add_argument("--web", action="append", default=[], help="NAME=URL of a web host")
    parser.add_argument("--sim-key")
    parser.add_argument("--redis", help="Redis URL of the cluster (cost figures)")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--inbound-rate", type=float, default=20, help="inbound messages per second (all sessions)")
    parser.add_argument("--cost-phases", type=float, default=0, help="seconds of each kind of work alone first")
    parser.add_argument("--kill", default="", help="hosts to take down halfway, e.g. 'web1 wk1'")
    parser.add_argument("--media-skip", default="", help="why the media check cannot run")
    parser.add_argument("--work")
    parser.add_argument("--root")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.summary:
        return summary(args.summary, args.baseline)
    result = Run(args).execute()
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)
    print_run(result)
    failed = [n for n, c in result["checks"].items() if c.get("ok") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
