"""CRUD over the configured AE titles, sources, destinations and pipelines (SQLite).

The adapter reads from here on every association, so a change over REST takes effect for the next
association without a restart.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import socket
import sqlite3
import time
import uuid
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from clara_stream.platform.db import INTEGRITY_ERRORS, Database
from clara_stream.platform.pipeline_files import check_pipeline_file
from clara_stream.platform.schemas import AeConfig, DestinationConfig, PipelineConfig, SourceConfig
from clara_stream.platform.security import check_app, installed_app
from clara_stream.platform.status import ConflictError, InvalidRequestError, NotFoundError

M = TypeVar("M", bound=BaseModel)

_KINDS: dict[str, tuple[type[BaseModel], tuple[str, ...]]] = {
    "ae": (AeConfig, ("ae_title",)),
    "source": (SourceConfig, ("ae_title", "host_ip")),
    "destination": (DestinationConfig, ("ae_title", "host_ip", "port")),
}


@functools.lru_cache(maxsize=256)
def _addresses(host: str) -> frozenset[str]:
    """The addresses a configured host resolves to (cached: resolved per name, not per association)."""
    try:
        return frozenset(str(a[4][0]) for a in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP))
    except (socket.gaierror, UnicodeError):
        return frozenset()


def app_requirements(app: str) -> dict:
    """``application.requirements`` of an installed app's metadata.json ({} when absent).

    Found by module spec, so the service never imports the app (or Holoscan) to read it.
    """
    try:
        spec = importlib.util.find_spec(f"clara_stream.apps.{app}")
    except (ImportError, ValueError):
        return {}
    if spec is None or not spec.origin:
        return {}
    meta = Path(spec.origin).parent / "metadata.json"
    try:
        return dict(json.loads(meta.read_text()).get("application", {}).get("requirements", {}))
    except (OSError, ValueError, AttributeError):
        return {}


class ConfigStore:
    """Named configuration entities, stored as their JSON payload plus indexed columns.

    Every write is all-or-nothing: an AE whose workflows or destinations are invalid is refused
    whole, never half-saved.

    Parameters
    ----------
    db : the shared database.
    app_roots : folders a pipeline's app may lie under (else only installed apps may run).
    """

    def __init__(self, db: Database, app_roots: list[Path] | None = None) -> None:
        self.db = db
        self.app_roots = [Path(r) for r in app_roots or []]

    # -- generic ---------------------------------------------------------------------------
    def _columns(self, kind: str, item: BaseModel) -> dict:
        _, cols = _KINDS[kind]
        return {c: getattr(item, c) for c in cols}

    def create(self, kind: str, item: M) -> M:
        """Insert ``item``; ConflictError if its name (or an AE's title) is taken."""
        cols = self._columns(kind, item)
        names = ", ".join(["name", *cols, "body"])
        marks = ", ".join("?" * (len(cols) + 2))
        new_pipelines = self._check_references(kind, item)
        try:
            with self.db.write() as con:
                con.execute(
                    f"INSERT INTO {kind} ({names}) VALUES ({marks})",
                    (item.name, *cols.values(), item.model_dump_json(by_alias=True)),
                )
                for p in new_pipelines:
                    self._put_pipeline(con, p)
        except INTEGRITY_ERRORS as exc:
            raise ConflictError(f"{kind} {item.name!r}: expected a unique name and AE title; {exc}") from None
        return item

    def update(self, kind: str, item: M) -> M:
        """Replace the entity called ``item.name``; NotFoundError if absent."""
        cols = self._columns(kind, item)
        sets = ", ".join(f"{c} = ?" for c in [*cols, "body"])
        new_pipelines = self._check_references(kind, item)
        try:
            with self.db.write() as con:
                cur = con.execute(
                    f"UPDATE {kind} SET {sets} WHERE name = ?",
                    (*cols.values(), item.model_dump_json(by_alias=True), item.name),
                )
                if cur.rowcount == 0:
                    raise NotFoundError(f"{kind}: expected an existing name; got {item.name!r}")
                for p in new_pipelines:
                    self._put_pipeline(con, p)
        except INTEGRITY_ERRORS as exc:
            raise ConflictError(f"{kind} {item.name!r}: {exc}") from None
        return item

    def _check_references(self, kind: str, item: BaseModel) -> list[PipelineConfig]:
        """An AE's destinations must exist and its workflows be registered pipelines or installed
        apps; returns the pipelines to register with it (in the same transaction)."""
        if kind != "ae":
            return []
        self.check_destinations(item.destinations)
        new = []
        for name in item.workflows:
            try:
                self.pipeline(name)
            except NotFoundError:
                if not installed_app(name):
                    known = [r["name"] for r in self.db.query("SELECT name FROM pipeline ORDER BY name")]
                    raise InvalidRequestError(
                        f"workflows: expected registered pipelines {known} or installed app names; got {name!r}"
                    ) from None
                new.append(self._installed_pipeline(name))
        return new

    def get(self, kind: str, name: str) -> BaseModel:
        row = self.db.query_one(f"SELECT body FROM {kind} WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError(f"{kind}: expected an existing name; got {name!r}")
        return _KINDS[kind][0].model_validate_json(row["body"])

    def list(self, kind: str) -> list:
        model = _KINDS[kind][0]
        return [model.model_validate_json(r["body"]) for r in self.db.query(f"SELECT body FROM {kind} ORDER BY name")]

    def delete(self, kind: str, name: str) -> BaseModel:
        """Delete one entity; a destination some AE still sends results to cannot be deleted."""
        item = self.get(kind, name)
        if kind == "destination":
            users = [a.name for a in self.list("ae") if name in a.destinations]
            if users:
                raise ConflictError(f"destination {name!r}: expected no AE using it; got AE(s) {users}")
        with self.db.write() as con:
            con.execute(f"DELETE FROM {kind} WHERE name = ?", (name,))
        return item

    # -- typed helpers used by the adapter -------------------------------------------------
    def ae_by_title(self, ae_title: str) -> AeConfig | None:
        row = self.db.query_one("SELECT body FROM ae WHERE ae_title = ?", (ae_title.strip(),))
        return AeConfig.model_validate_json(row["body"]) if row else None

    def source_allowed(self, ae_title: str, host: str) -> bool:
        """True if a configured source has this calling AE title and host (an IP, or a name that
        resolves to the peer's address: ``localhost`` matches 127.0.0.1)."""
        rows = self.db.query("SELECT host_ip FROM source WHERE ae_title = ?", (ae_title.strip(),))
        return any(host == r["host_ip"] or host in _addresses(r["host_ip"]) for r in rows)

    def destination(self, name: str) -> DestinationConfig:
        return self.get("destination", name)  # type: ignore[return-value]

    def check_destinations(self, names: list[str]) -> None:
        """InvalidRequestError naming the first unknown destination."""
        known = {d.name for d in self.list("destination")}
        for n in names:
            if n not in known:
                raise InvalidRequestError(f"destinations: expected configured names {sorted(known)}; got {n!r}")

    # -- pipelines -------------------------------------------------------------------------
    def pipeline_or_register(self, name: str) -> PipelineConfig:
        """The registered pipeline ``name``; else register the installed app of that name."""
        try:
            return self.pipeline(name)
        except NotFoundError:
            if not installed_app(name):
                raise
        return self.put_pipeline(self._installed_pipeline(name))

    @staticmethod
    def _installed_pipeline(name: str) -> PipelineConfig:
        """A pipeline for installed app ``name`` with the memory its ``metadata.json`` declares."""
        needs = app_requirements(name)
        return PipelineConfig(
            name=name,
            app=name,
            cpu_memory_mb=int(needs.get("memory_mb", 512)),
            gpu_memory_mb=int(needs.get("gpu_memory_mb", 0)),
        )

    def put_pipeline(self, item: PipelineConfig) -> PipelineConfig:
        """Register or replace a pipeline (keeps its first registration time and its id).

        Raises InvalidRequestError unless its app is installed or under an app root.
        """
        with self.db.write() as con:
            return self._put_pipeline(con, item)

    def _put_pipeline(self, con: sqlite3.Connection, item: PipelineConfig) -> PipelineConfig:
        check_app(item.app, self.app_roots)
        check_pipeline_file(item.app)  # a declarative pipeline .yaml: refused here with its file:line problems
        row = con.execute("SELECT id FROM pipeline WHERE name = ?", (item.name,)).fetchone()
        pid = (row["id"] if row is not None else None) or uuid.uuid4().hex  # a given id is ignored: ours
        con.execute(
            "INSERT INTO pipeline (name, body, registered_at, id) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET body = excluded.body, id = excluded.id",
            (item.name, item.model_dump_json(by_alias=True, exclude={"id"}), time.time(), pid),
        )
        return item.model_copy(update={"id": pid})

    def _pipeline_id(self, name: str, pid: str | None) -> str:
        """The row's id; a row registered before ids existed gets one now."""
        if pid:
            return pid
        pid = uuid.uuid4().hex
        with self.db.write() as con:
            con.execute("UPDATE pipeline SET id = ? WHERE name = ? AND id IS NULL", (pid, name))
            return con.execute("SELECT id FROM pipeline WHERE name = ?", (name,)).fetchone()["id"]

    def pipeline(self, name: str) -> PipelineConfig:
        """The pipeline registered under ``name`` or with id ``name``."""
        row = self.db.query_one("SELECT name, body, id FROM pipeline WHERE name = ? OR id = ?", (name, name))
        if row is None:
            known = [r["name"] for r in self.db.query("SELECT name FROM pipeline ORDER BY name")]
            raise NotFoundError(f"pipeline: expected a registered name {known} or id; got {name!r}")
        item = PipelineConfig.model_validate_json(row["body"])
        return item.model_copy(update={"id": self._pipeline_id(row["name"], row["id"])})

    def pipelines(self) -> list[dict]:
        """Every pipeline with its registration time and queued/running job counts."""
        rows = self.db.query(
            "SELECT p.name, p.body, p.id, p.registered_at, "
            "(SELECT COUNT(*) FROM job j WHERE j.pipeline = p.name AND j.status = 'queued') AS queued, "
            "(SELECT COUNT(*) FROM job j WHERE j.pipeline = p.name AND j.status = 'running') AS running "
            "FROM pipeline p ORDER BY p.name"
        )
        out = []
        for r in rows:
            d = PipelineConfig.model_validate_json(r["body"]).model_dump()
            d.update(registered_at=r["registered_at"], queued=r["queued"], running=r["running"],
                     id=self._pipeline_id(r["name"], r["id"]))  # fmt: skip
            out.append(d)
        return out

    def delete_pipeline(self, name: str) -> PipelineConfig:
        item = self.pipeline(name)  # a name or an id
        with self.db.write() as con:
            con.execute("DELETE FROM pipeline WHERE name = ?", (item.name,))
        return item
