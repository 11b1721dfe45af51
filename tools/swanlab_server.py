#!/usr/bin/env python3
"""A stand-in for the SwanLab API server, for tests.

It speaks the HTTP protocol the real ``swanlab`` Python client (0.8.0 - 0.10.x) speaks in cloud
(``online``) mode and for ``swanlab sync``, records everything that arrives in a store folder
(SQLite, durable across restarts), and never invents data: the dump shows what the client sent.
See docs/swanlab-server-standin.md for the routes, the client files they come from, the fault
switches and the dump format.

Usage:
    python tools/swanlab_server.py serve --port 0 --store DIR --api-key KEY [--api-key KEY2 ...]
                                         [--refuse-login] [--status CODE [--status-prefix P]
                                         [--status-count N]] [--delay S] [--hang-after-metrics N]
                                         [--hang-after-point KEY[:STEP]] [--hang-prefix P]
                                         [--drop [--drop-prefix P] [--drop-count N]
                                         [--drop-when before|after]] [--faults JSON]
                                         [--legacy-projects] [--public-cloud]
        Serves on 127.0.0.1 until killed; prints its base URL (one line) once it listens.
    python tools/swanlab_server.py dump --store DIR [--requests]
        Prints the JSON dump of the store (works while a server runs on it, or after).

From tests:
    from tools.swanlab_server import StandIn
    with StandIn(tmp_path / "store", api_keys=["k1"]) as server:
        ... SWANLAB_API_HOST=server.url ...
        server.set_faults(status={"code": 503, "prefix": "/api/house/metrics", "count": 2})
        data = server.dump()

Stdlib only, Python 3.10+: this is a test tool, not a runtime dependency.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["StandIn", "username_for_key", "load_dump", "serve", "main"]

SERVER_NAME = "swanlab-standin/1"
API = "/api"
ADMIN = "/__standin__"
STORAGE = "/__storage__"
# Bodies of at most this many bytes are kept in the request log (JSON/text); larger ones and
# binary bodies are logged by size and sha256 only.
LOG_BODY_LIMIT = 256 * 1024
SESSION_DAYS = 30


def username_for_key(key: str) -> str:
    """The username of the user an API key belongs to (its default workspace).

    Deterministic: ``standin-`` and the first 8 hex digits of the key's sha256.
    """
    return "standin-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def _now() -> float:
    return time.time()


def _iso(ts: float) -> str:
    """ISO 8601 with milliseconds and a Z, the form the client parses (``%Y-%m-%dT%H:%M:%S.%fZ``)."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _new_id(n: int = 21) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


# ------------------------------------------------------------------------------------------------
# Store
# ------------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS sessions (sid TEXT PRIMARY KEY, key_marker TEXT, username TEXT, ts REAL);
CREATE TABLE IF NOT EXISTS projects (
    cuid TEXT PRIMARY KEY, workspace TEXT, name TEXT, visibility TEXT, ts REAL, via TEXT,
    UNIQUE(workspace, name));
CREATE TABLE IF NOT EXISTS experiments (
    cuid TEXT PRIMARY KEY, workspace TEXT, project TEXT, project_cuid TEXT, name TEXT,
    created_at TEXT, state TEXT, ts REAL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, request_id INTEGER, kind TEXT,
    experiment TEXT, project TEXT, payload TEXT);
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT, experiment TEXT, path TEXT, part INTEGER, size INTEGER, sha256 TEXT, md5 TEXT,
    content_type TEXT, file TEXT, ts REAL, request_id INTEGER);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, method TEXT, path TEXT, query TEXT,
    headers TEXT, body_size INTEGER, body_sha256 TEXT, body TEXT, key TEXT, route TEXT,
    status INTEGER, outcome TEXT, duration REAL);
CREATE INDEX IF NOT EXISTS events_exp ON events(experiment, kind);
CREATE INDEX IF NOT EXISTS objects_exp ON objects(experiment, kind, path);
"""


class Store:
    """Everything the stand-in received, in ``DIR/store.sqlite3`` (+ ``DIR/objects/``)."""

    def __init__(self, root: Path, readonly: bool = False):
        self.root = Path(root).resolve()
        self.objects = self.root / "objects"
        if not readonly:
            self.objects.mkdir(parents=True, exist_ok=True)
        db = self.root / "store.sqlite3"
        if readonly and not db.exists():
            raise FileNotFoundError(f"no stand-in store at {self.root} (missing {db.name})")
        self.lock = threading.RLock()
        self.db = sqlite3.connect(str(db), check_same_thread=False, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        if not readonly:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            if self.meta("secret") is None:
                self.set_meta("secret", secrets.token_hex(16))

    # -- helpers --
    def q(self, sql: str, args: tuple = ()) -> List[sqlite3.Row]:
        with self.lock:
            return list(self.db.execute(sql, args))

    def x(self, sql: str, args: tuple = ()) -> int:
        with self.lock:
            cur = self.db.execute(sql, args)
            return cur.lastrowid or 0

    def meta(self, k: str) -> Optional[str]:
        rows = self.q("SELECT v FROM meta WHERE k=?", (k,))
        return rows[0]["v"] if rows else None

    def set_meta(self, k: str, v: str) -> None:
        self.x("INSERT OR REPLACE INTO meta(k, v) VALUES(?, ?)", (k, v))

    def event(self, kind: str, payload: Any, *, experiment: Optional[str] = None,
              project: Optional[str] = None, request_id: Optional[int] = None) -> None:
        self.x("INSERT INTO events(ts, request_id, kind, experiment, project, payload) VALUES(?,?,?,?,?,?)",
               (_now(), request_id, kind, experiment, project, json.dumps(payload, ensure_ascii=False)))

    def events(self, experiment: Optional[str] = None, kinds: Optional[Tuple[str, ...]] = None,
               project: Optional[str] = None) -> List[Tuple[float, str, Any]]:
        sql, args = "SELECT ts, kind, payload FROM events WHERE 1=1", []
        if experiment is not None:
            sql += " AND experiment=?"
            args.append(experiment)
        if project is not None:
            sql += " AND project=?"
            args.append(project)
        if kinds:
            sql += " AND kind IN (%s)" % ",".join("?" * len(kinds))
            args.extend(kinds)
        sql += " ORDER BY id"
        return [(r["ts"], r["kind"], json.loads(r["payload"])) for r in self.q(sql, tuple(args))]

    def put_object(self, kind: str, experiment: str, path: str, data: bytes, content_type: str,
                   part: Optional[int] = None, request_id: Optional[int] = None) -> str:
        sha = hashlib.sha256(data).hexdigest()
        md5 = hashlib.md5(data).hexdigest()
        # Files are named by content, never by the client's path (no path traversal).
        name = f"{sha}.bin"
        target = self.objects / name
        if not target.exists():
            tmp = target.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        self.x("INSERT INTO objects(kind, experiment, path, part, size, sha256, md5, content_type, file, ts,"
               " request_id) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
               (kind, experiment, path, part, len(data), sha, md5, content_type, name, _now(), request_id))
        return md5

    def latest_object(self, kind: str, experiment: str, path: str) -> Optional[sqlite3.Row]:
        rows = self.q("SELECT * FROM objects WHERE kind=? AND experiment=? AND path=? ORDER BY rowid DESC LIMIT 1",
                      (kind, experiment, path))
        return rows[0] if rows else None

    def read_object(self, row: sqlite3.Row) -> bytes:
        return (self.objects / row["file"]).read_bytes()

    def sign(self, text: str) -> str:
        secret = (self.meta("secret") or "").encode()
        return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


# ------------------------------------------------------------------------------------------------
# Faults
# ------------------------------------------------------------------------------------------------

def _rules(value: Any) -> List[Dict[str, Any]]:
    if value is None or value is False:
        return []
    if isinstance(value, dict):
        value = [value]
    out = []
    for rule in value:
        if isinstance(rule, int):
            rule = {"code": rule}
        rule = dict(rule)
        rule.setdefault("prefix", "/")
        out.append(rule)
    return out


def _point_rule(value: Any) -> Optional[Dict[str, Any]]:
    """hang_after_point's value: None (off), or {"key": str, "step": int >= 0 (default 1)}."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("key"), str) or not value["key"]:
        raise ValueError('hang_after_point must be {"key": "<metric key>", "step": <int>} or null')
    step = value.get("step", 1)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError("hang_after_point.step must be an integer >= 0")
    return {"key": value["key"], "step": step}


class Faults:
    """Fault switches; changed from the command line or at run time (POST /__standin__/faults).

    refuse_login: bool               login answers 401 (as for an unknown key), even for known keys
    status: rule or list of rules    {"code": 500, "prefix": "/api/house/metrics", "count": 2,
                                      "methods": ["POST"]}: answer that status (count: that many
                                      times, then the rule is gone; no count: until cleared)
    delay: seconds                   delay every answer (delay_prefix limits it to a path prefix)
    hang_after_metrics: N            after N more metric uploads (POST /api/house/metrics) are
                                     answered, requests under hang_prefix (default: every route)
                                     are accepted and never answered until the switch is cleared;
                                     then they are handled normally
    hang_after_point: {"key": K, "step": S}
                                     the same hold, once a scalar point of key K at a step >= S
                                     (default 1) has been received since the switch was set: a
                                     precondition a test can name ("the server has step 1 of the
                                     loss, and nothing after it arrives") whatever order and
                                     batches the client uploads in
    drop: rule or list of rules      {"prefix": "/api/house/metrics", "count": 1, "when": "before"}:
                                     read the request, then close the socket without any response;
                                     when "after": handle (store) it first, then close
    """

    KEYS = ("refuse_login", "status", "delay", "delay_prefix", "hang_after_metrics", "hang_after_point",
            "hang_prefix", "drop")

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.metric_uploads = 0
        self.hung_now = 0
        self.clear()

    def clear(self) -> None:
        with self.cond:
            self.refuse_login = False
            self.status: List[Dict[str, Any]] = []
            self.delay = 0.0
            self.delay_prefix = "/"
            self.hang_after_metrics: Optional[int] = None
            self.hang_after_point: Optional[Dict[str, Any]] = None
            self._point_seen = False
            self.hang_prefix = "/"
            self._hang_base = 0
            self.drop: List[Dict[str, Any]] = []
            self.version = getattr(self, "version", 0) + 1
            self.cond.notify_all()

    def update(self, spec: Dict[str, Any]) -> None:
        unknown = set(spec) - set(self.KEYS) - {"clear"}
        if unknown:
            raise ValueError(f"unknown fault switch(es): {sorted(unknown)}; known: {list(self.KEYS)}")
        point = _point_rule(spec.get("hang_after_point"))  # checked before anything changes
        with self.cond:
            if spec.get("clear"):
                self.clear()
            if "refuse_login" in spec:
                self.refuse_login = bool(spec["refuse_login"])
            if "status" in spec:
                self.status = _rules(spec["status"])
            if "delay" in spec:
                self.delay = float(spec["delay"] or 0)
            if "delay_prefix" in spec:
                self.delay_prefix = spec["delay_prefix"] or "/"
            if "hang_after_metrics" in spec:
                n = spec["hang_after_metrics"]
                self.hang_after_metrics = None if n is None else int(n)
                self._hang_base = self.metric_uploads
            if "hang_after_point" in spec:
                self.hang_after_point = point
                self._point_seen = False
            if "hang_prefix" in spec:
                self.hang_prefix = spec["hang_prefix"] or "/"
            if "drop" in spec:
                rules = spec["drop"]
                if rules is True:
                    rules = [{}]
                self.drop = _rules(rules)
                for r in self.drop:
                    r.setdefault("when", "before")
                    if r["when"] not in ("before", "after"):
                        raise ValueError("drop.when must be 'before' or 'after'")
            self.version += 1
            self.cond.notify_all()

    def snapshot(self) -> Dict[str, Any]:
        with self.cond:
            return {
                "refuse_login": self.refuse_login, "status": [dict(r) for r in self.status],
                "delay": self.delay, "delay_prefix": self.delay_prefix,
                "hang_after_metrics": self.hang_after_metrics,
                "hang_after_point": dict(self.hang_after_point) if self.hang_after_point else None,
                "hang_prefix": self.hang_prefix,
                "drop": [dict(r) for r in self.drop],
                "counters": {"metric_uploads": self.metric_uploads,
                             "metric_uploads_since_hang_set": self.metric_uploads - self._hang_base,
                             "requests_held_now": self.hung_now,
                             "holding": self._holding()},
            }

    @staticmethod
    def _match(rule: Dict[str, Any], method: str, path: str) -> bool:
        if not path.startswith(rule.get("prefix") or "/"):
            return False
        methods = rule.get("methods")
        return not methods or method.upper() in [m.upper() for m in methods]

    def _take(self, rules: List[Dict[str, Any]], method: str, path: str) -> Optional[Dict[str, Any]]:
        for rule in list(rules):
            if self._match(rule, method, path):
                if rule.get("count") is not None:
                    rule["count"] = int(rule["count"]) - 1
                    if rule["count"] <= 0:
                        rules.remove(rule)
                return dict(rule)
        return None

    def take_status(self, method: str, path: str) -> Optional[Dict[str, Any]]:
        with self.cond:
            return self._take(self.status, method, path)

    def take_drop(self, method: str, path: str, when: str) -> bool:
        with self.cond:
            candidates = [r for r in self.drop if r.get("when", "before") == when]
            rule = self._take(candidates, method, path)
            if rule is None:
                return False
            # _take decremented the copy in candidates (same dict objects as in self.drop)
            self.drop = [r for r in self.drop if r.get("count") is None or r["count"] > 0]
            return True

    def delay_for(self, path: str) -> float:
        with self.cond:
            return self.delay if self.delay and path.startswith(self.delay_prefix) else 0.0

    def _holding(self) -> bool:
        """Whether a stop-answering switch has taken effect (new requests under the prefix wait)."""
        after_metrics = (self.hang_after_metrics is not None
                         and self.metric_uploads - self._hang_base >= self.hang_after_metrics)
        return after_metrics or (self.hang_after_point is not None and self._point_seen)

    def _hanging(self, path: str) -> bool:
        return self._holding() and path.startswith(self.hang_prefix)

    def hold_if_hanging(self, path: str, stopping: threading.Event) -> bool:
        """Block while the hang switch applies to this path. True if the request was held."""
        with self.cond:
            if not self._hanging(path):
                return False
            self.hung_now += 1
            try:
                while self._hanging(path) and not stopping.is_set():
                    self.cond.wait(timeout=0.5)
            finally:
                self.hung_now -= 1
            return True

    def count_metric_upload(self, body: Dict[str, Any]) -> None:
        """After an upload was stored: count it, and note the point hang_after_point waits for."""
        with self.cond:
            self.metric_uploads += 1
            rule = self.hang_after_point
            if rule is not None and body.get("type") == "scalar":
                for m in body.get("metrics") or []:
                    step = m.get("index") if isinstance(m, dict) else None
                    if isinstance(step, int) and m.get("key") == rule["key"] and step >= rule["step"]:
                        self._point_seen = True
            self.cond.notify_all()


# ------------------------------------------------------------------------------------------------
# The API
# ------------------------------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Response:
    def __init__(self, status: int = 200, body: Any = None, headers: Optional[Dict[str, str]] = None):
        self.status, self.body, self.headers = status, body, headers or {}


Route = Tuple[str, "re.Pattern[str]", str, Callable[..., Response]]


class App:
    """Routes, state changes and storage: what the real server does, as far as the client can tell."""

    def __init__(self, store: Store, api_keys: List[str], faults: Faults, legacy_projects: bool = False,
                 public_cloud: bool = False):
        self.store = store
        # SwanLab's public cloud does not store run.save files (docs.swanlab.cn/en/api/py-save:
        # "private deployment only"); a private deployment says so at /api/self_hosted/info.
        self.public_cloud = public_cloud
        self.api_keys = list(api_keys)
        self.faults = faults
        self.legacy_projects = legacy_projects
        self.base_url = ""  # set once the server listens
        self.routes: List[Route] = []
        r = self._route
        # login (client: sdk/internal/pkg/client/bootstrap.py)
        r("POST", r"/api/login/api_key", "login", self.login)
        # projects (sdk/internal/core_python/api/project.py, deprecated/project.py)
        r("GET", r"/api/project/(?P<ws>[^/]+)/(?P<name>[^/]+)", "project.get", self.project_get)
        r("POST", r"/api/projects/(?P<ws>[^/]+)", "project.create", self.project_create)
        r("POST", r"/api/project", "project.create_legacy", self.project_create_legacy)
        # experiments (sdk/internal/core_python/api/experiment.py)
        r("POST", r"/api/project/(?P<ws>[^/]+)/(?P<name>[^/]+)/experiment", "experiment.create", self.exp_create)
        r("GET", r"/api/project/(?P<ws>[^/]+)/(?P<name>[^/]+)/runs/(?P<id>[^/]+)", "experiment.get", self.exp_get)
        r("PUT", r"/api/project/(?P<ws>[^/]+)/(?P<name>[^/]+)/runs/(?P<id>[^/]+)/state", "experiment.state",
          self.exp_state)
        r("PUT", r"/api/project/(?P<ws>[^/]+)/(?P<name>[^/]+)/runs/(?P<id>[^/]+)/profile", "experiment.profile",
          self.exp_profile)
        r("POST", r"/api/house/experiments/(?P<id>[^/]+)/heartbeat", "experiment.heartbeat", self.exp_heartbeat)
        r("GET", r"/api/house/metrics/summaries/(?P<pid>[^/]+)/(?P<id>[^/]+)", "metrics.summary", self.summary)
        # columns (sdk/internal/core_python/api/upload.py; deprecated/sender.py and 0.8.x upload.py)
        r("POST", r"/api/projects/(?P<ws>[^/]+)/(?P<name>[^/]+)/series", "columns.series", self.columns_series)
        r("POST", r"/api/experiment/(?P<id>[^/]+)/columns", "columns.legacy", self.columns_legacy)
        # metrics, media, logs (sdk/internal/core_python/api/upload.py)
        r("POST", r"/api/house/metrics", "metrics.upload", self.metrics_upload)
        r("POST", r"/api/resources/presigned/put", "resources.presign", self.presign)
        # what kind of deployment this is (swanlab/api/self_hosted.py, 0.10)
        r("GET", r"/api/self_hosted/info", "self_hosted.info", self.self_hosted_info)
        # saved files (sdk/internal/core_python/api/save.py)
        r("POST", r"/api/experiment/(?P<id>[^/]+)/files/prepare", "files.prepare", self.files_prepare)
        r("POST", r"/api/experiment/(?P<id>[^/]+)/files/complete", "files.complete", self.files_complete)
        r("POST", r"/api/experiment/(?P<id>[^/]+)/files/prepare-multipart", "files.prepare_multipart",
          self.files_prepare_multipart)
        r("POST", r"/api/experiment/(?P<id>[^/]+)/files/complete-multipart", "files.complete_multipart",
          self.files_complete_multipart)
        # object storage behind the presigned URLs (served by this process)
        r("PUT", r"/__storage__/(?P<kind>resources|files|parts)/(?P<id>[^/]+)/(?P<path>.+)", "storage.put",
          self.storage_put)

    def _route(self, method: str, pattern: str, name: str, fn: Callable[..., Response]) -> None:
        self.routes.append((method, re.compile(pattern + r"/?\Z"), name, fn))

    def match(self, method: str, path: str) -> Tuple[Optional[str], Optional[Callable[..., Response]], Dict[str, str]]:
        for m, rx, name, fn in self.routes:
            hit = rx.match(path)
            if hit and m == method:
                return name, fn, {k: unquote(v) for k, v in hit.groupdict().items()}
        return None, None, {}

    # -- auth --
    def key_marker(self, key: Optional[str]) -> str:
        if key is None:
            return "key:none"
        try:
            return f"key#{self.api_keys.index(key) + 1}"
        except ValueError:
            return "key:unknown"

    def session(self, sid: Optional[str]) -> Optional[sqlite3.Row]:
        if not sid:
            return None
        rows = self.store.q("SELECT * FROM sessions WHERE sid=?", (sid,))
        return rows[0] if rows else None

    def need_user(self, ctx: "Ctx") -> str:
        row = self.session(ctx.sid)
        if row is None:
            raise ApiError(401, "UNAUTHORIZED", "not logged in (missing or unknown sid cookie)")
        return row["username"]

    def login(self, ctx: "Ctx") -> Response:
        key = ctx.headers.get("authorization")
        if self.faults.refuse_login or key is None or key not in self.api_keys:
            raise ApiError(401, "UNAUTHORIZED", "invalid api key")
        username = username_for_key(key)
        sid = "standin-" + secrets.token_hex(16)
        marker = self.key_marker(key)
        self.store.x("INSERT INTO sessions(sid, key_marker, username, ts) VALUES(?,?,?,?)",
                     (sid, marker, username, _now()))
        self.store.event("login", {"key": marker, "username": username}, request_id=ctx.request_id)
        expired = _iso(_now() + SESSION_DAYS * 86400)
        return Response(200, {"sid": sid, "expiredAt": expired,
                              "userInfo": {"username": username, "name": username}})

    # -- projects --
    def _project_row(self, ws: str, name: str) -> Optional[sqlite3.Row]:
        rows = self.store.q("SELECT * FROM projects WHERE workspace=? AND name=?", (ws, name))
        return rows[0] if rows else None

    def _project_body(self, row: sqlite3.Row) -> Dict[str, Any]:
        count = self.store.q("SELECT COUNT(*) AS n FROM experiments WHERE project_cuid=?", (row["cuid"],))[0]["n"]
        body = {
            "cuid": row["cuid"], "name": row["name"], "path": f"/{row['workspace']}/{row['name']}",
            "visibility": row["visibility"], "username": row["workspace"],  # 0.8.x reads username
            "group": {"username": row["workspace"]},  # 0.9+ reads group.username
            "_count": {"experiments": count, "contributors": 1, "collaborators": 0, "clones": 0},
        }
        if not self.legacy_projects:
            body["version"] = 1  # 0.9+: multi-view project (series columns); absent: legacy sender
        return body

    def _create_project(self, ctx: "Ctx", ws: str, data: Dict[str, Any], via: str) -> Tuple[sqlite3.Row, bool]:
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "BAD_REQUEST", "project name is required")
        with self.store.lock:
            row = self._project_row(ws, name)
            if row is not None:
                return row, False
            cuid = _new_id()
            visibility = data.get("visibility") or "PRIVATE"
            self.store.x("INSERT INTO projects(cuid, workspace, name, visibility, ts, via) VALUES(?,?,?,?,?,?)",
                         (cuid, ws, name, visibility, _now(), via))
            self.store.event("project.create", {"workspace": ws, "body": data, "via": via},
                             project=cuid, request_id=ctx.request_id)
            row = self._project_row(ws, name)
            assert row is not None
            return row, True

    def project_get(self, ctx: "Ctx", ws: str, name: str) -> Response:
        self.need_user(ctx)
        row = self._project_row(ws, name)
        if row is None:
            raise ApiError(404, "NOT_FOUND", f"project {ws}/{name} not found")
        return Response(200, self._project_body(row))

    def project_create(self, ctx: "Ctx", ws: str) -> Response:
        self.need_user(ctx)
        if self.legacy_projects:
            raise ApiError(404, "NOT_FOUND", "this (legacy) server has no POST /api/projects/{owner}")
        _, created = self._create_project(ctx, ws, ctx.json_body(dict), "projects")
        return Response(201 if created else 200, {})

    def project_create_legacy(self, ctx: "Ctx") -> Response:
        user = self.need_user(ctx)
        data = ctx.json_body(dict)
        ws = data.get("username") or user
        row, created = self._create_project(ctx, ws, data, "project")
        body = self._project_body(row)
        if not created:
            # 0.8.x reads the existing project from the 409 body (sdk/.../api/project.py)
            return Response(409, {"code": "CONFLICT", "message": "project already exists", **body})
        return Response(201, body)

    # -- experiments --
    def _exp(self, cuid: str) -> Optional[sqlite3.Row]:
        rows = self.store.q("SELECT * FROM experiments WHERE cuid=?", (cuid,))
        return rows[0] if rows else None

    def _need_exp(self, cuid: str) -> sqlite3.Row:
        row = self._exp(cuid)
        if row is None:
            raise ApiError(404, "NOT_FOUND", f"experiment {cuid} not found")
        return row

    def _need_exp_in(self, ws: str, name: str, cuid: str) -> sqlite3.Row:
        row = self._exp(cuid)
        if row is None or row["workspace"] != ws or row["project"] != name:
            raise ApiError(404, "NOT_FOUND", f"experiment {cuid} not found in {ws}/{name}")
        return row

    def _exp_body(self, row: sqlite3.Row) -> Dict[str, Any]:
        return {"cuid": row["cuid"], "name": row["name"], "createdAt": row["created_at"], "state": row["state"],
                "projectId": row["project_cuid"]}

    def exp_create(self, ctx: "Ctx", ws: str, name: str) -> Response:
        self.need_user(ctx)
        body = ctx.json_body(dict)
        project = self._project_row(ws, name)
        if project is None:
            raise ApiError(404, "NOT_FOUND", f"project {ws}/{name} not found")
        cuid = body.get("cuid") or _new_id()
        if not isinstance(cuid, str):
            raise ApiError(400, "BAD_REQUEST", "cuid must be a string")
        if not isinstance(body.get("name"), str) or not body["name"]:
            raise ApiError(400, "BAD_REQUEST", "experiment name is required")
        with self.store.lock:
            row = self._exp(cuid)
            if row is not None:
                if row["project_cuid"] != project["cuid"]:
                    raise ApiError(409, "CONFLICT",
                                   f"experiment {cuid} belongs to {row['workspace']}/{row['project']}")
                # An existing experiment: resume it (back to RUNNING), keep its name and createdAt.
                self.store.x("UPDATE experiments SET state='RUNNING' WHERE cuid=?", (cuid,))
                self.store.event("experiment.resume", body, experiment=cuid, request_id=ctx.request_id)
                return Response(200, self._exp_body(self._need_exp(cuid)))
            created_at = body.get("createdAt") if isinstance(body.get("createdAt"), str) else _iso(_now())
            self.store.x("INSERT INTO experiments(cuid, workspace, project, project_cuid, name, created_at, state, ts)"
                         " VALUES(?,?,?,?,?,?,?,?)",
                         (cuid, ws, name, project["cuid"], body["name"], created_at, "RUNNING", _now()))
            self.store.event("experiment.create", body, experiment=cuid, request_id=ctx.request_id)
            return Response(201, self._exp_body(self._need_exp(cuid)))

    def exp_get(self, ctx: "Ctx", ws: str, name: str, id: str) -> Response:
        self.need_user(ctx)
        return Response(200, self._exp_body(self._need_exp_in(ws, name, id)))

    def exp_state(self, ctx: "Ctx", ws: str, name: str, id: str) -> Response:
        self.need_user(ctx)
        self._need_exp_in(ws, name, id)
        body = ctx.json_body(dict)
        state = body.get("state")
        if not isinstance(state, str) or not state:
            raise ApiError(400, "BAD_REQUEST", "state is required")
        self.store.x("UPDATE experiments SET state=? WHERE cuid=?", (state, id))
        self.store.event("experiment.state", body, experiment=id, request_id=ctx.request_id)
        return Response(200, {})

    def exp_profile(self, ctx: "Ctx", ws: str, name: str, id: str) -> Response:
        self.need_user(ctx)
        self._need_exp_in(ws, name, id)
        body = ctx.json_body(dict)
        self.store.event("experiment.profile", body, experiment=id, request_id=ctx.request_id)
        return Response(200, {})

    def exp_heartbeat(self, ctx: "Ctx", id: str) -> Response:
        self.need_user(ctx)
        self._need_exp(id)
        self.store.event("experiment.heartbeat", ctx.json_body(dict, required=False) or {}, experiment=id,
                         request_id=ctx.request_id)
        return Response(201, {})

    def summary(self, ctx: "Ctx", pid: str, id: str) -> Response:
        """Latest step per key received so far (what resume and sync --id start after)."""
        self.need_user(ctx)
        row = self._need_exp(id)
        if row["project_cuid"] != pid:
            raise ApiError(404, "NOT_FOUND", f"experiment {id} not found in project {pid}")
        latest: Dict[str, Dict[str, int]] = {"scalar": {}, "media": {}, "log": {}}
        for _, _, payload in self.store.events(id, ("metrics",)):
            kind = payload.get("type")
            if kind not in latest:
                continue
            for m in payload.get("metrics") or []:
                if kind == "log":
                    key, step = "log", m.get("epoch")
                else:
                    key, step = m.get("key"), m.get("index")
                if isinstance(key, str) and isinstance(step, int):
                    latest[kind][key] = max(step, latest[kind].get(key, step))
        return Response(200, {kind: [{"key": k, "step": s} for k, s in sorted(v.items())]
                              for kind, v in latest.items()})

    # -- columns --
    def columns_series(self, ctx: "Ctx", ws: str, name: str) -> Response:
        self.need_user(ctx)
        project = self._project_row(ws, name)
        if project is None:
            raise ApiError(404, "NOT_FOUND", f"project {ws}/{name} not found")
        body = ctx.json_body(dict)
        if not isinstance(body.get("series"), list):
            raise ApiError(400, "BAD_REQUEST", "series must be a list")
        self.store.event("columns.series", body, project=project["cuid"], request_id=ctx.request_id)
        return Response(201, {})

    def columns_legacy(self, ctx: "Ctx", id: str) -> Response:
        self.need_user(ctx)
        self._need_exp(id)
        body = ctx.json_body(list)
        self.store.event("columns.legacy", body, experiment=id, request_id=ctx.request_id)
        return Response(201, {})

    # -- metrics --
    def metrics_upload(self, ctx: "Ctx") -> Response:
        self.need_user(ctx)
        body = ctx.json_body(dict)
        kind = body.get("type")
        if kind not in ("scalar", "media", "log"):
            raise ApiError(400, "BAD_REQUEST", f"unknown metric type {kind!r}")
        exp = body.get("experimentId")
        row = self._exp(exp) if isinstance(exp, str) else None
        if row is None:
            raise ApiError(404, "NOT_FOUND", f"experiment {exp!r} not found")
        if body.get("projectId") != row["project_cuid"]:
            raise ApiError(400, "BAD_REQUEST", "projectId does not match the experiment's project")
        if not isinstance(body.get("metrics"), list):
            raise ApiError(400, "BAD_REQUEST", "metrics must be a list")
        self.store.event("metrics", body, experiment=exp, request_id=ctx.request_id)
        self.faults.count_metric_upload(body)
        return Response(201, {})

    def _storage_url(self, kind: str, exp: str, path: str) -> str:
        rel = f"{STORAGE}/{kind}/{quote(exp, safe='')}/{quote(path, safe='/')}"
        return f"{self.base_url}{rel}?sig={self.store.sign(rel)}"

    def presign(self, ctx: "Ctx") -> Response:
        self.need_user(ctx)
        body = ctx.json_body(dict)
        exp, paths = body.get("experimentId"), body.get("paths")
        if not isinstance(exp, str) or self._exp(exp) is None:
            raise ApiError(404, "NOT_FOUND", f"experiment {exp!r} not found")
        if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
            raise ApiError(400, "BAD_REQUEST", "paths must be a list of strings")
        self.store.event("resources.presign", body, experiment=exp, request_id=ctx.request_id)
        return Response(200, {"urls": [self._storage_url("resources", exp, p) for p in paths]})

    # -- saved files --
    def _files(self, ctx: "Ctx", key: str = "files") -> List[Dict[str, Any]]:
        body = ctx.json_body(dict)
        files = body.get(key)
        if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("path"), str)
                                                  for f in files):
            raise ApiError(400, "BAD_REQUEST", f"{key} must be a list of objects with a path")
        return files

    def self_hosted_info(self, ctx: "Ctx") -> Response:
        self.need_user(ctx)
        if self.public_cloud:
            raise ApiError(404, "NOT_FOUND", "not a self-hosted deployment")
        return Response(200, {"enabled": True, "expired": False, "root": False, "plan": "free",
                              "seats": 0})

    def _files_accepted(self, ctx: "Ctx", id: str) -> None:
        self.need_user(ctx)
        self._need_exp(id)
        if self.public_cloud:
            self.store.event("files.refused", {"files": self._files(ctx)}, experiment=id,
                             request_id=ctx.request_id)
            raise ApiError(403, "FORBIDDEN", "saving files is only available on private deployments")

    def files_prepare(self, ctx: "Ctx", id: str) -> Response:
        self._files_accepted(ctx, id)
        files = self._files(ctx)
        self.store.event("files.prepare", {"files": files}, experiment=id, request_id=ctx.request_id)
        return Response(201, {"urls": [self._storage_url("files", id, f["path"]) for f in files]})

    def files_complete(self, ctx: "Ctx", id: str) -> Response:
        self.need_user(ctx)
        self._need_exp(id)
        files = self._files(ctx)
        missing = [f["path"] for f in files if f.get("state") == "UPLOADED"
                   and self.store.latest_object("files", id, f["path"]) is None]
        if missing:
            raise ApiError(404, "NOT_FOUND", f"file(s) never uploaded: {missing}")
        self.store.event("files.complete", {"files": files}, experiment=id, request_id=ctx.request_id)
        return Response(201, {})

    def files_prepare_multipart(self, ctx: "Ctx", id: str) -> Response:
        self._files_accepted(ctx, id)
        files = self._files(ctx)
        out = []
        for f in files:
            count = f.get("count")
            if not isinstance(count, int) or count <= 0:
                raise ApiError(400, "BAD_REQUEST", "count must be a positive integer")
            upload_id = "up-" + _new_id(16)
            f["uploadId"] = upload_id
            out.append({"uploadId": upload_id, "parts": [
                {"partNumber": n, "url": self._storage_url("parts", id, f"{upload_id}/{n}/{f['path']}")}
                for n in range(1, count + 1)]})
        self.store.event("files.prepare_multipart", {"files": files}, experiment=id, request_id=ctx.request_id)
        return Response(201, {"files": out})

    def files_complete_multipart(self, ctx: "Ctx", id: str) -> Response:
        self.need_user(ctx)
        self._need_exp(id)
        files = self._files(ctx)
        for f in files:
            upload_id, parts = f.get("uploadId"), f.get("parts")
            if not isinstance(upload_id, str) or not isinstance(parts, list) or not parts:
                raise ApiError(400, "BAD_REQUEST", "uploadId and parts are required")
            chunks = []
            for p in sorted(parts, key=lambda p: p.get("partNumber", 0)):
                row = self.store.latest_object("parts", id, f"{upload_id}/{p.get('partNumber')}/{f['path']}")
                if row is None:
                    raise ApiError(400, "BAD_REQUEST", f"part {p.get('partNumber')} of {f['path']} was not uploaded")
                if p.get("etag") != row["md5"]:
                    raise ApiError(400, "BAD_REQUEST", f"etag mismatch for part {p.get('partNumber')}")
                chunks.append(self.store.read_object(row))
            self.store.put_object("files", id, f["path"], b"".join(chunks), "application/octet-stream",
                                  request_id=ctx.request_id)
        self.store.event("files.complete_multipart", {"files": files}, experiment=id, request_id=ctx.request_id)
        return Response(201, {})

    # -- object storage --
    def storage_put(self, ctx: "Ctx", kind: str, id: str, path: str) -> Response:
        rel = ctx.raw_path
        if not hmac.compare_digest(ctx.query.get("sig", [""])[0], self.store.sign(rel)):
            raise ApiError(403, "SignatureDoesNotMatch", "bad or missing signature")
        part = None
        if kind == "parts":
            upload_id, number, _ = path.split("/", 2)
            part = int(number)
        md5 = self.store.put_object(kind, id, path, ctx.body, ctx.headers.get("content-type", ""), part=part,
                                    request_id=ctx.request_id)
        return Response(200, None, {"ETag": f'"{md5}"'})


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------

class Ctx:
    def __init__(self, method: str, raw_path: str, query: Dict[str, List[str]], headers: Dict[str, str],
                 body: bytes, request_id: int):
        self.method, self.raw_path, self.query, self.headers, self.body = method, raw_path, query, headers, body
        self.request_id = request_id
        self.sid = None
        for part in headers.get("cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == "sid":
                self.sid = v

    def json_body(self, kind: type, required: bool = True) -> Any:
        if not self.body:
            if required:
                raise ApiError(400, "BAD_REQUEST", "a JSON body is required")
            return None
        try:
            data = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "BAD_REQUEST", "the body is not JSON")
        if not isinstance(data, kind):
            raise ApiError(400, "BAD_REQUEST", f"the body must be a JSON {kind.__name__}")
        return data


def _masked_headers(app: App, headers: Dict[str, str]) -> Dict[str, str]:
    out = {}
    for k, v in headers.items():
        lk = k.lower()
        if lk in ("authorization", "x-api-key", "api-key"):
            out[k] = app.key_marker(v)
        elif lk == "cookie":
            parts = []
            for part in v.split(";"):
                name, _, val = part.strip().partition("=")
                if name == "sid":
                    row = app.session(val)
                    parts.append(f"sid=<session of {row['key_marker'] if row else 'unknown sid'}>")
                else:
                    parts.append(part.strip())
            out[k] = "; ".join(parts)
        else:
            out[k] = v
    return out


class Handler(BaseHTTPRequestHandler):
    server_version = SERVER_NAME
    sys_version = ""
    protocol_version = "HTTP/1.1"

    # set on the class built in make_server
    app: App
    stopping: threading.Event

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), format % args))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any, headers: Optional[Dict[str, str]] = None,
              request_id: Optional[int] = None) -> None:
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if request_id is not None:
            self.send_header("traceid", f"standin-{request_id}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _drop(self) -> None:
        """Close the socket without a response."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self) -> None:
        app = self.app
        started = time.monotonic()
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query, keep_blank_values=True)
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        if path.startswith(ADMIN):
            return self._admin(path, query, body)

        masked = _masked_headers(app, dict(self.headers.items()))
        text: Optional[str] = None
        if body and len(body) <= LOG_BODY_LIMIT and not path.startswith(STORAGE):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        key = masked.get("authorization") or masked.get("Authorization")
        if key is None:
            sid = Ctx("", "", {}, headers, b"", 0).sid
            row = app.session(sid)
            key = row["key_marker"] if row else ("sid:unknown" if sid else "key:none")
        route, fn, params = app.match(self.command, path)
        request_id = app.store.x(
            "INSERT INTO requests(ts, method, path, query, headers, body_size, body_sha256, body, key, route)"
            " VALUES(?,?,?,?,?,?,?,?,?,?)",
            (_now(), self.command, path, split.query, json.dumps(masked), len(body),
             hashlib.sha256(body).hexdigest() if body else None, text, key, route))

        def finish(status: Optional[int], outcome: str) -> None:
            app.store.x("UPDATE requests SET status=?, outcome=?, duration=? WHERE id=?",
                        (status, outcome, time.monotonic() - started, request_id))

        delay = app.faults.delay_for(path)
        if delay:
            time.sleep(delay)
        if app.faults.hold_if_hanging(path, self.stopping):
            if self.stopping.is_set():
                finish(None, "held until shutdown")
                return self._drop()
        if app.faults.take_drop(self.command, path, "before"):
            finish(None, "dropped before handling")
            return self._drop()
        rule = app.faults.take_status(self.command, path)
        if rule is not None:
            status = int(rule.get("code", 500))
            body_out = rule.get("body", {"code": str(status), "message": f"stand-in fault: status {status}"})
            finish(status, "fault status")
            return self._send(status, body_out, request_id=request_id)
        if fn is None:
            finish(404, "unimplemented")
            return self._send(404, {"code": "NOT_FOUND", "message": f"stand-in: {self.command} {path} is not "
                                                                    "implemented"}, request_id=request_id)
        ctx = Ctx(self.command, path, query, headers, body, request_id)
        try:
            resp = fn(ctx, **params)
        except ApiError as e:
            resp = Response(e.status, {"code": e.code, "message": e.message})
        except Exception as e:  # a bug in the stand-in: answer 500 and say so in the log
            import traceback
            traceback.print_exc()
            resp = Response(500, {"code": "STANDIN_BUG", "message": f"{type(e).__name__}: {e}"})
        if app.faults.take_drop(self.command, path, "after"):
            finish(resp.status, "handled, then dropped")
            return self._drop()
        finish(resp.status, "ok" if resp.status < 400 else "error")
        self._send(resp.status, resp.body, resp.headers, request_id=request_id)

    def _admin(self, path: str, query: Dict[str, List[str]], body: bytes) -> None:
        app = self.app
        try:
            if path == f"{ADMIN}/health":
                return self._send(200, {"ok": True, "url": app.base_url, "pid": os.getpid()})
            if path == f"{ADMIN}/dump":
                return self._send(200, build_dump(app.store, requests="requests" in query))
            if path == f"{ADMIN}/requests":
                since = int(query.get("since", ["0"])[0])
                return self._send(200, request_log(app.store, since))
            if path == f"{ADMIN}/faults":
                if self.command == "POST":
                    spec = json.loads(body.decode("utf-8") or "{}")
                    app.faults.update(spec)
                return self._send(200, app.faults.snapshot())
        except (ValueError, TypeError) as e:
            return self._send(400, {"code": "BAD_REQUEST", "message": str(e)})
        return self._send(404, {"code": "NOT_FOUND", "message": f"no admin route {path}"})

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def make_server(store_dir: Path, api_keys: List[str], port: int = 0, faults: Optional[Dict[str, Any]] = None,
                legacy_projects: bool = False, host: str = "127.0.0.1",
                public_cloud: bool = False) -> Tuple[Server, App, threading.Event]:
    store = Store(Path(store_dir))
    fault_switches = Faults()
    if faults:
        fault_switches.update(faults)
    app = App(store, api_keys, fault_switches, legacy_projects=legacy_projects,
              public_cloud=public_cloud)
    stopping = threading.Event()
    handler = type("BoundHandler", (Handler,), {"app": app, "stopping": stopping})
    server = Server((host, port), handler)
    app.base_url = f"http://{host}:{server.server_address[1]}"
    store.set_meta("last_url", app.base_url)
    return server, app, stopping


def serve(store_dir: Path, api_keys: List[str], port: int = 0, faults: Optional[Dict[str, Any]] = None,
          legacy_projects: bool = False, public_cloud: bool = False) -> None:
    server, app, stopping = make_server(store_dir, api_keys, port, faults, legacy_projects,
                                        public_cloud=public_cloud)

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.stdout.write(app.base_url + "\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stopping.set()
        server.server_close()


# ------------------------------------------------------------------------------------------------
# Dump
# ------------------------------------------------------------------------------------------------

def _config_values(config: Any) -> Any:
    """The client sends config as {key: {"value": v, "sort": i, "desc": ...}}; show key -> value."""
    if not isinstance(config, dict):
        return config
    out = {}
    for k, v in config.items():
        out[k] = v["value"] if isinstance(v, dict) and "value" in v else v
    return out


def _media_type(path: str) -> Optional[str]:
    parts = path.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == "media" else None


def request_log(store: Store, since: int = 0) -> List[Dict[str, Any]]:
    out = []
    for r in store.q("SELECT * FROM requests WHERE id>? ORDER BY id", (since,)):
        out.append({"id": r["id"], "ts": r["ts"], "method": r["method"], "path": r["path"], "query": r["query"],
                    "headers": json.loads(r["headers"]), "body_size": r["body_size"],
                    "body_sha256": r["body_sha256"], "body": r["body"], "key": r["key"], "route": r["route"],
                    "status": r["status"], "outcome": r["outcome"], "duration": r["duration"]})
    return out


def build_dump(store: Store, requests: bool = False) -> Dict[str, Any]:
    projects = []
    for p in store.q("SELECT * FROM projects ORDER BY ts"):
        series = []
        for _, _, payload in store.events(project=p["cuid"], kinds=("columns.series",)):
            series.extend(payload.get("series") or [])
        projects.append({"workspace": p["workspace"], "name": p["name"], "cuid": p["cuid"],
                         "visibility": p["visibility"], "created_via": p["via"], "columns": series})
    experiments = []
    for e in store.q("SELECT * FROM experiments ORDER BY ts"):
        experiments.append(_dump_experiment(store, e))
    unimplemented = [{"method": r["method"], "path": r["path"], "count": r["n"]} for r in store.q(
        "SELECT method, path, COUNT(*) AS n FROM requests WHERE outcome='unimplemented' GROUP BY method, path"
        " ORDER BY MIN(id)")]
    users = [{"key": r["key_marker"], "username": r["username"], "logins": r["n"]} for r in store.q(
        "SELECT key_marker, username, COUNT(*) AS n FROM sessions GROUP BY key_marker, username ORDER BY MIN(ts)")]
    counts = store.q("SELECT COUNT(*) AS n FROM requests")[0]["n"]
    out: Dict[str, Any] = {"server": SERVER_NAME, "store": str(store.root), "users": users, "projects": projects,
                           "experiments": experiments, "unimplemented": unimplemented, "request_count": counts}
    if requests:
        out["requests"] = request_log(store)
    return out


def _dump_experiment(store: Store, e: sqlite3.Row) -> Dict[str, Any]:
    cuid = e["cuid"]
    events = store.events(cuid)
    created = [p for _, k, p in events if k == "experiment.create"]
    resumed = [p for _, k, p in events if k == "experiment.resume"]
    first = created[0] if created else {}
    colors = first.get("colors") or []
    states = [p for _, k, p in events if k == "experiment.state"]
    profile: Dict[str, Any] = {}
    profile_uploads: Dict[str, int] = {}
    for _, k, p in events:
        if k == "experiment.profile":
            for key, value in p.items():
                profile[key] = value
                profile_uploads[key] = profile_uploads.get(key, 0) + 1

    metrics: Dict[str, Dict[int, Any]] = {}
    media: Dict[str, Dict[int, Dict[str, Any]]] = {}
    logs: Dict[int, Dict[str, Any]] = {}
    duplicates: List[Dict[str, Any]] = []
    metric_uploads = {"scalar": 0, "media": 0, "log": 0}
    for _, k, p in events:
        if k != "metrics":
            continue
        kind = p.get("type")
        metric_uploads[kind] = metric_uploads.get(kind, 0) + 1
        for m in p.get("metrics") or []:
            if kind == "scalar":
                key, step = m.get("key"), m.get("index")
                series = metrics.setdefault(key, {})
                if step in series:
                    duplicates.append({"type": "scalar", "key": key, "step": step, "first": series[step],
                                       "again": m.get("data")})
                else:
                    series[step] = m.get("data")
            elif kind == "media":
                key, step = m.get("key"), m.get("index")
                series_m = media.setdefault(key, {})
                entry = _media_entry(store, cuid, m)
                if step in series_m:
                    duplicates.append({"type": "media", "key": key, "step": step,
                                       "first": series_m[step]["files"], "again": entry["files"]})
                else:
                    series_m[step] = entry
            elif kind == "log":
                epoch = m.get("epoch")
                line = {"epoch": epoch, "level": m.get("level"), "message": m.get("message"),
                        "create_time": m.get("create_time")}
                if epoch in logs:
                    duplicates.append({"type": "log", "key": "log", "step": epoch, "first": logs[epoch]["message"],
                                       "again": m.get("message")})
                else:
                    logs[epoch] = line

    def step_key(s: Any) -> Tuple[int, Any]:
        return (0, s) if isinstance(s, (int, float)) else (1, str(s))

    files: Dict[str, Dict[str, Any]] = {}
    for _, k, p in events:
        if k in ("files.prepare", "files.prepare_multipart"):
            for f in p.get("files") or []:
                entry = files.setdefault(f["path"], {"name": f["path"], "state": "PENDING", "prepares": 0})
                entry.update({"declared_size": f.get("size"), "md5": f.get("md5"), "mime_type": f.get("mimeType"),
                              "multipart": k == "files.prepare_multipart"})
                entry["prepares"] += 1
        elif k == "files.complete":
            for f in p.get("files") or []:
                files.setdefault(f["path"], {"name": f["path"], "prepares": 0})["state"] = f.get("state")
        elif k == "files.complete_multipart":
            for f in p.get("files") or []:
                files.setdefault(f["path"], {"name": f["path"], "prepares": 0})["state"] = "UPLOADED"
        elif k == "files.refused":  # --public-cloud
            for f in p.get("files") or []:
                entry = files.setdefault(f["path"], {"name": f["path"], "prepares": 0})
                entry.update({"state": "REFUSED", "declared_size": f.get("size"), "md5": f.get("md5")})
    for name, entry in files.items():
        row = store.latest_object("files", cuid, name)
        entry["size"] = row["size"] if row else None
        entry["stored_md5"] = row["md5"] if row else None
        entry["content_matches_md5"] = bool(row and row["md5"] == entry.get("md5"))

    legacy_columns = []
    for _, k, p in events:
        if k == "columns.legacy":
            legacy_columns.extend(p)

    return {
        "workspace": e["workspace"], "project": e["project"], "id": cuid, "name": e["name"],
        "description": first.get("description"), "state": e["state"],
        "states_received": [s.get("state") for s in states],
        "finished_at": states[-1].get("finishedAt") if states else None,
        "created_at": e["created_at"],
        "config": _config_values(profile.get("config")) if "config" in profile else {},
        "tags": [lab.get("name") for lab in first.get("labels") or [] if isinstance(lab, dict)],
        "group": first.get("cluster"), "job_type": first.get("job"),
        "color": colors[0] if colors else None, "colors": colors,
        "metrics": {k: [[s, v[s]] for s in sorted(v, key=step_key)] for k, v in sorted(metrics.items())},
        "media": {k: [v[s] for s in sorted(v, key=step_key)] for k, v in sorted(media.items())},
        "logs": [logs[s] for s in sorted(logs, key=step_key)],
        "files": sorted(files.values(), key=lambda f: f["name"]),
        "profile": profile, "profile_uploads": profile_uploads,
        "created_count": len(created), "resumed_count": len(resumed), "resume_bodies": resumed,
        "create_body": first,
        "duplicates": duplicates, "metric_uploads": metric_uploads,
        "heartbeats": sum(1 for _, k, _ in events if k == "experiment.heartbeat"),
        "legacy_columns": legacy_columns,
    }


def _media_entry(store: Store, cuid: str, m: Dict[str, Any]) -> Dict[str, Any]:
    paths = m.get("data") or []
    files, texts = [], []
    kinds = {t for t in (_media_type(p) for p in paths) if t}
    for p in paths:
        row = store.latest_object("resources", cuid, p)
        files.append({"path": p, "size": row["size"] if row else None, "stored": row is not None,
                      "content_type": row["content_type"] if row else None})
        if row is not None and _media_type(p) == "text":
            texts.append(store.read_object(row).decode("utf-8", errors="replace"))
    entry: Dict[str, Any] = {"step": m.get("index"), "type": kinds.pop() if len(kinds) == 1 else sorted(kinds),
                             "files": files, "more": m.get("more") or []}
    if texts:
        entry["text"] = texts
    return entry


def load_dump(store_dir: Path, requests: bool = False) -> Dict[str, Any]:
    return build_dump(Store(Path(store_dir), readonly=True), requests=requests)


# ------------------------------------------------------------------------------------------------
# Test helper
# ------------------------------------------------------------------------------------------------

class StandIn:
    """Runs ``serve`` in a subprocess on a free port; for tests.

    >>> with StandIn(tmp_path / "store", api_keys=["k1"]) as s:
    ...     s.url, s.set_faults(delay=0.5), s.dump()
    """

    def __init__(self, store_dir: Path, api_keys: Optional[List[str]] = None, faults: Optional[Dict[str, Any]] = None,
                 legacy_projects: bool = False, python: Optional[str] = None, startup_timeout: float = 30.0,
                 extra_args: Optional[List[str]] = None, public_cloud: bool = False):
        self.store_dir = Path(store_dir)
        self.extra_args = list(extra_args or [])
        self.api_keys = list(api_keys if api_keys is not None else ["standin-test-key"])
        self.faults = faults
        self.legacy_projects = legacy_projects
        self.public_cloud = public_cloud
        self.python = python or sys.executable
        self.startup_timeout = startup_timeout
        self.proc: Optional[subprocess.Popen] = None
        self.url: Optional[str] = None
        self.port: Optional[int] = None
        self.log_path = self.store_dir / "server.log"

    def username(self, key: Optional[str] = None) -> str:
        return username_for_key(key if key is not None else self.api_keys[0])

    def start(self, port: Optional[int] = None) -> "StandIn":
        if self.proc is not None:
            raise RuntimeError("already started")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        cmd = [self.python, str(Path(__file__).resolve()), "serve", "--port", str(port or 0),
               "--store", str(self.store_dir)]
        for k in self.api_keys:
            cmd += ["--api-key", k]
        if self.faults:
            cmd += ["--faults", json.dumps(self.faults)]
        if self.legacy_projects:
            cmd.append("--legacy-projects")
        if self.public_cloud:
            cmd.append("--public-cloud")
        cmd += self.extra_args
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        line: List[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        text = line[0].decode().strip() if line else ""
        if not text.startswith("http://"):
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(f"the SwanLab stand-in did not start within {self.startup_timeout} s "
                               f"(first line {text!r}); its log:\n{tail}")
        self.url = text
        self.port = int(text.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def restart(self, same_port: bool = True) -> "StandIn":
        port = self.port if same_port else None
        self.stop()
        return self.start(port=port)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _call(self, method: str, route: str, body: Any = None, timeout: float = 30.0) -> Any:
        if not self.running:
            raise RuntimeError("the stand-in is not running")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{ADMIN}{route}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode())

    def dump(self, requests: bool = False) -> Dict[str, Any]:
        if self.running:
            return self._call("GET", "/dump" + ("?requests" if requests else ""))
        return load_dump(self.store_dir, requests=requests)

    def requests(self, since: int = 0) -> List[Dict[str, Any]]:
        if self.running:
            return self._call("GET", f"/requests?since={since}")
        return request_log(Store(self.store_dir, readonly=True), since)

    def set_faults(self, **switches: Any) -> Dict[str, Any]:
        return self._call("POST", "/faults", switches)

    def clear_faults(self) -> Dict[str, Any]:
        return self._call("POST", "/faults", {"clear": True})

    def get_faults(self) -> Dict[str, Any]:
        return self._call("GET", "/faults")

    def __enter__(self) -> "StandIn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------

def _faults_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    spec: Dict[str, Any] = json.loads(args.faults) if args.faults else {}
    if args.refuse_login:
        spec["refuse_login"] = True
    if args.status is not None:
        rule: Dict[str, Any] = {"code": args.status, "prefix": args.status_prefix}
        if args.status_count is not None:
            rule["count"] = args.status_count
        spec["status"] = _rules(spec.get("status")) + [rule]
    if args.delay:
        spec["delay"] = args.delay
        spec["delay_prefix"] = args.delay_prefix
    if args.hang_after_metrics is not None:
        spec["hang_after_metrics"] = args.hang_after_metrics
        spec["hang_prefix"] = args.hang_prefix
    if args.hang_after_point is not None:
        key, sep, step = args.hang_after_point.rpartition(":")
        if not sep or not step.isdigit():  # no ":STEP": the whole value is the key, step 1
            key, step = args.hang_after_point, "1"
        spec["hang_after_point"] = {"key": key, "step": int(step)}
        spec["hang_prefix"] = args.hang_prefix
    if args.drop:
        rule = {"prefix": args.drop_prefix, "when": args.drop_when}
        if args.drop_count is not None:
            rule["count"] = args.drop_count
        spec["drop"] = _rules(spec.get("drop")) + [rule]
    return spec


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="SwanLab API server stand-in for tests")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve on 127.0.0.1 until killed; prints the base URL once listening")
    s.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    s.add_argument("--store", type=Path, required=True, help="folder for the SQLite store and uploaded objects")
    s.add_argument("--api-key", action="append", default=[], help="an accepted API key (repeatable)")
    s.add_argument("--legacy-projects", action="store_true",
                   help="behave like a server before multi-view projects: no POST /api/projects/{owner}, "
                        "projects without 'version' (the client then uses the legacy column route)")
    s.add_argument("--public-cloud", action="store_true",
                   help="answer as SwanLab's public cloud: not a self-hosted deployment "
                        "(/api/self_hosted/info 404) and run.save refused (files/prepare 403)")
    s.add_argument("--faults", help="fault switches as JSON (same keys as POST /__standin__/faults)")
    s.add_argument("--refuse-login", action="store_true", help="answer every login with 401")
    s.add_argument("--status", type=int, help="answer this HTTP status (e.g. 401, 500, 503) ...")
    s.add_argument("--status-prefix", default="/", help="... for paths under this prefix (default: all)")
    s.add_argument("--status-count", type=int, help="... this many times (default: until cleared)")
    s.add_argument("--delay", type=float, default=0.0, help="delay every answer by this many seconds")
    s.add_argument("--delay-prefix", default="/", help="only for paths under this prefix")
    s.add_argument("--hang-after-metrics", type=int,
                   help="after N metric uploads, hold every request (under --hang-prefix) unanswered")
    s.add_argument("--hang-after-point", metavar="KEY[:STEP]",
                   help="once a scalar point of KEY at a step >= STEP (default 1) has arrived, hold every "
                        "request (under --hang-prefix) unanswered")
    s.add_argument("--hang-prefix", default="/")
    s.add_argument("--drop", action="store_true", help="close the connection without a response ...")
    s.add_argument("--drop-prefix", default="/", help="... for paths under this prefix")
    s.add_argument("--drop-count", type=int, help="... this many times (default: until cleared)")
    s.add_argument("--drop-when", choices=("before", "after"), default="before",
                   help="before handling the request (nothing stored) or after (stored, answer lost)")
    d = sub.add_parser("dump", help="print the JSON dump of a store")
    d.add_argument("--store", type=Path, required=True)
    d.add_argument("--requests", action="store_true", help="include the raw request log")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        if not args.api_key:
            parser.error("give at least one --api-key")
        serve(args.store, args.api_key, args.port, _faults_from_args(args), args.legacy_projects,
              public_cloud=args.public_cloud)
        return 0
    json.dump(load_dump(args.store, requests=args.requests), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
