#!/usr/bin/python3
"""appgrid's example app: notes, written to the primary, read from a replica
through a memcached read-through cache.

Environment (written by appgrid into the app's env file):
  ADDR, PORT              where to listen
  DATABASE_URL            the primary (writes, schema, health)
  DATABASE_REPLICA_URLS   replicas, comma-separated (reads); may be empty
  MEMCACHE_SERVERS        host:port,... ; may be empty (no cache)

  GET  /health      200 "ok" when the primary answers (500 with --broken-health)
  GET  /            a line saying which instance answered
  POST /notes       body = the note's text -> 201 {"id": ...}
  GET  /notes/<id>  {"note": {...}, "cached": bool, "source": ..., "served_by": ...}
"""

import json
import os
import random
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import psycopg2.pool
from pymemcache.client.hash import HashClient

ADDR = os.environ.get("ADDR", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8080"))
SERVED_BY = f"{ADDR}:{PORT}"
PRIMARY = os.environ["DATABASE_URL"]
REPLICAS = [u for u in os.environ.get("DATABASE_REPLICA_URLS", "").split(",") if u.strip()]
CACHE_TTL = 300
HERE = os.path.dirname(os.path.abspath(__file__))
# `app.py --broken-health` (the rollback tests): GET /health answers 500, all
# else works, so appgrid must refuse the release and go back.
BROKEN_HEALTH = "--broken-health" in sys.argv[1:]


def host_of(dsn):
    """The host[:port] part of a postgres:// URL, for the answer (never the password)."""
    rest = dsn.split("://", 1)[-1]
    rest = rest.rsplit("@", 1)[-1]
    return rest.split("/", 1)[0]


class Pools:
    """A small connection pool per database, created lazily, thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pools = {}

    def get(self, dsn):
        with self.lock:
            pool = self.pools.get(dsn)
            if pool is None:
                pool = psycopg2.pool.ThreadedConnectionPool(0, 8, dsn, connect_timeout=3)
                self.pools[dsn] = pool
            return pool

    def run(self, dsn, fn):
        pool = self.get(dsn)
        conn = pool.getconn()
        broken = False
        try:
            with conn:
                with conn.cursor() as cur:
                    return fn(cur)
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True
            raise
        finally:
            pool.putconn(conn, close=broken or conn.closed != 0)


POOLS = Pools()


def cache_client():
    servers = []
    for s in os.environ.get("MEMCACHE_SERVERS", "").split(","):
        s = s.strip()
        if s:
            host, _, port = s.rpartition(":")
            servers.append((host, int(port)))
    if not servers:
        return None
    return HashClient(servers, connect_timeout=1, timeout=1, use_pooling=True,
                      ignore_exc=True, retry_attempts=1, dead_timeout=5)


CACHE = cache_client()


def note_json(row):
    return {"id": row[0], "body": row[1], "created_at": row[2].isoformat()}


def read_note(note_id):
    """(note or None, source): a random replica, then the primary (a replica
    that is down, or has not caught up with a just-written note yet)."""
    select = lambda cur: (cur.execute(
        "SELECT id, body, created_at FROM notes WHERE id = %s", (note_id,)), cur.fetchone())[1]
    if REPLICAS:
        replica = random.choice(REPLICAS)
        try:
            row = POOLS.run(replica, select)
            if row is not None:
                return note_json(row), host_of(replica)
        except psycopg2.Error as e:
            print(f"replica {host_of(replica)} failed, reading the primary: {e.__class__.__name__}",
                  file=sys.stderr)
    row = POOLS.run(PRIMARY, select)
    return (note_json(row) if row else None), host_of(PRIMARY)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "appgrid-example/1"

    def reply(self, status, body, content_type="application/json"):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", SERVED_BY)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        if not self.path.startswith("/health"):
            super().log_message(fmt, *args)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        try:
            if path == "/health":
                if BROKEN_HEALTH:
                    return self.reply(500, "broken on purpose\n", "text/plain")
                POOLS.run(PRIMARY, lambda cur: cur.execute("SELECT 1"))
                return self.reply(200, "ok\n", "text/plain")
            if path == "/":
                return self.reply(200, f"appgrid example app, served by {SERVED_BY}\n", "text/plain")
            if path.startswith("/notes/"):
                try:
                    note_id = int(path[len("/notes/"):])
                except ValueError:
                    return self.reply(400, {"error": "a note id is a number"})
                key = f"note:{note_id}"
                cached = CACHE.get(key) if CACHE else None
                if cached is not None:
                    note, source = json.loads(cached), "cache"
                else:
                    note, source = read_note(note_id)
                    if note is None:
                        return self.reply(404, {"error": f"no note {note_id}", "served_by": SERVED_BY})
                    if CACHE:
                        CACHE.set(key, json.dumps(note), expire=CACHE_TTL)
                return self.reply(200, {"note": note, "cached": source == "cache",
                                        "source": source, "served_by": SERVED_BY})
            return self.reply(404, {"error": "not found"})
        except psycopg2.Error as e:
            return self.reply(503, {"error": f"database: {e.__class__.__name__}", "served_by": SERVED_BY})

    def do_POST(self):
        if self.path.split("?", 1)[0] != "/notes":
            return self.reply(404, {"error": "not found"})
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        if not body.strip():
            return self.reply(400, {"error": "the note's text is the request body"})
        try:
            row = POOLS.run(PRIMARY, lambda cur: (cur.execute(
                "INSERT INTO notes (body) VALUES (%s) RETURNING id, body, created_at", (body,)),
                cur.fetchone())[1])
        except psycopg2.Error as e:
            return self.reply(503, {"error": f"database: {e.__class__.__name__}", "served_by": SERVED_BY})
        return self.reply(201, {"id": row[0], "note": note_json(row), "served_by": SERVED_BY})


def main():
    with open(os.path.join(HERE, "schema.sql")) as f:
        schema = f.read()
    # Instances start together: serialize the schema (CREATE TABLE IF NOT
    # EXISTS alone races on the catalog) with a transaction-scoped lock.
    def create(cur):
        cur.execute("SELECT pg_advisory_xact_lock(726300111)")
        cur.execute(schema)
    POOLS.run(PRIMARY, create)
    server = ThreadingHTTPServer((ADDR, PORT), Handler)
    server.daemon_threads = True

    def stop(_sig, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on {SERVED_BY}", file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
