"""Dataset registry: register folders/files under configured roots, list, describe, load lazily,
and keep each dataset's saved render settings (``config_render.json``).

Paths are resolved (symlinks followed) and must lie under one of the configured roots; anything
else is refused with :class:`PathNotAllowed`. Registrations persist in ``state_dir/datasets.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clara_stream.render import dataconfig, loaders
from clara_stream.render.durable import write_durably
from clara_stream.render.settings_store import SettingsMixin
from clara_stream.render.sources import ArraySource, SlideSource
from clara_stream.render.tiles import TileServer
from clara_stream.render.volume import Volume

log = logging.getLogger(__name__)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _entries(folder: Path) -> dict[str, dict]:
    """The DataConfig arrays of a seed folder's config.meta."""
    return dataconfig.array_entries(loaders.read_seed_meta(folder), folder)


class PathNotAllowed(PermissionError):
    """A dataset path outside every configured root."""


class UnknownDataset(KeyError):
    """No dataset registered under that id."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class DatasetRecord:
    """One registered dataset. ``kind``: volume, slide or image; ``format``: how it was read."""

    id: str
    name: str
    kind: str
    format: str
    path: str
    mask_path: str = ""
    series_uid: str = ""
    labels: dict[str, dict[str, Any]] | None = None


class DatasetRegistry(SettingsMixin):
    """Registered datasets and their loaded data (loaded on first use, then kept).

    Parameters
    ----------
    roots : list of Path
        Only paths under these folders may be registered.
    state_dir : Path
        Where registrations and settings of read-only datasets are kept.
    max_loaded_gb : float
        Budget for volumes kept in memory; the least recently used ones are dropped (and reloaded
        on demand) when a new load would exceed it. Default 8.
    """

    def __init__(self, roots: list[Path], state_dir: Path, max_loaded_gb: float = 8.0) -> None:
        if max_loaded_gb <= 0:
            raise ValueError(f"DatasetRegistry: expected max_loaded_gb > 0; got {max_loaded_gb}")
        self.max_loaded_bytes = int(max_loaded_gb * 2**30)
        if not roots:
            raise ValueError("DatasetRegistry: expected at least one dataset root; got none")
        self.roots = [Path(r).resolve() for r in roots]
        for r in self.roots:
            if not r.is_dir():
                raise ValueError(f"DatasetRegistry: expected dataset roots to be folders; got {r}")
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, DatasetRecord] = {}
        self._volumes: OrderedDict[str, Volume] = OrderedDict()
        self._tiles: dict[str, TileServer] = {}
        self._lock = threading.RLock()
        self._loading: dict[str, threading.Lock] = {}
        #: Registrations whose path is missing or outside the roots at start (a mount not there yet
        #: after a reboot): kept in the index, not served, served again once the path is back.
        self._absent: dict[str, DatasetRecord] = {}
        self._load_index()

    # ---- paths --------------------------------------------------------------------------------
    def confine(self, path: str | Path) -> Path:
        """Resolved ``path`` if under a root, else :class:`PathNotAllowed`."""
        if not str(path) or "\x00" in str(path) or len(str(path)) > 4096:
            raise ValueError(f"datasets: expected a path of 1..4096 characters; got {str(path)[:80]!r}")
        p = Path(path)
        if not p.is_absolute():
            p = self.roots[0] / p
        p = p.resolve()
        if not any(p.is_relative_to(r) for r in self.roots):
            raise PathNotAllowed(f"datasets: expected a path under {[str(r) for r in self.roots]}; got {p}")
        if not p.exists():
            raise FileNotFoundError(f"datasets: expected an existing path; got {p}")
        return p

    def _inside(self, path: Path, what: str, where: Path) -> Path:
        """``path`` resolved (symlinks followed) if under a root, else :class:`PathNotAllowed`."""
        p = path.resolve()
        if not any(p.is_relative_to(r) for r in self.roots):
            raise PathNotAllowed(
                f"datasets: expected every file a dataset names under {[str(r) for r in self.roots]}; "
                f"got {what} {path} -> {p} [{where}]"
            )
        return p

    def confine_files(self, rec: DatasetRecord) -> list[Path]:
        """Every file reading ``rec`` opens, each confined to a root: volume headers and the pixel
        files they name (MetaImage ``ElementDataFile``, NRRD ``data file``), each DICOM file of a
        series folder (symlinks followed), the label map. Returns the DICOM files (else []).

        Raises
        ------
        PathNotAllowed
            If any of them (after resolving ``..`` and symlinks) leaves every root.
        """
        p = Path(rec.path)
        headers: list[Path] = []
        if rec.format in ("seed", "arrays"):
            headers.append(p / loaders.read_seed_meta(p)["image"])
        elif rec.format == "volume":
            headers.append(p)
        if rec.mask_path:
            headers.append(Path(rec.mask_path))
        for h in headers:
            self._inside(h, "header", p)
            for f in loaders.referenced_files(h):
                self._inside(f, "pixel data file", h)
        if rec.format != "dicom":
            return []
        files = loaders.dicom_files(p)
        for f in files:
            self._inside(f, "DICOM file", p)
        return files

    # ---- registration -------------------------------------------------------------------------
    def register(self, path: str | Path, name: str = "", mask: str | Path = "", dataset_id: str = "") -> DatasetRecord:
        """Register a dataset (validated and probed now, pixel data loaded on first render)."""
        p = self.confine(path)
        fmt = loaders.detect(p)
        mask_p = self.confine(mask) if mask else None
        record = DatasetRecord(
            id="",
            name=name or p.name.split(".")[0] or p.name,
            kind="volume",
            format=fmt,
            path=str(p),
            mask_path=str(mask_p or ""),
        )
        if fmt == "seed":
            meta = loaders.read_seed_meta(p)
            record.name = name or str(meta.get("name", record.name))
            record.labels = meta.get("labels")
            if not mask_p and meta.get("mask"):
                record.mask_path = str(p / meta["mask"])
            if "arrays" in meta:
                record.format = "arrays"
                record.kind = "image" if dataconfig.is_2d(_entries(p)) else "volume"
        elif fmt == "dicom":
            if not loaders.dicom_files(p):
                raise ValueError(f"datasets: expected DICOM files in {p}; got none")
        elif fmt == "slide":
            record.kind = "slide"
            SlideSource(p).close()  # probe now: a bad file fails registration, not the first view
        elif fmt == "image":
            record.kind = "image"
            loaders.load_image(p)
        if record.format == "arrays":  # checked now: a bad array fails registration, not the first view
            self.confine_files(record)
            dataconfig.probe(p, _entries(p))
        self.confine_files(record)
        if dataset_id and not _ID.match(dataset_id):
            raise ValueError(f"datasets: expected id matching {_ID.pattern}; got {dataset_id!r}")
        digest = hashlib.sha1(f"{p}|{record.mask_path}".encode()).hexdigest()[:8]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", record.name).strip("-.")[:40] or "dataset"
        record.id = dataset_id or f"{slug}-{digest}"
        with self._lock:
            before = self._records.get(record.id)
            self._records[record.id] = record
            try:
                self._save_index()  # durable before it is acknowledged; a failed write changes nothing
            except OSError:
                if before is None:
                    del self._records[record.id]
                else:
                    self._records[record.id] = before
                raise
            self._absent.pop(record.id, None)
            self._volumes.pop(record.id, None)
            old = self._tiles.pop(record.id, None)
            if old is not None:
                old.close()
        return record

    def _servable(self, rec: DatasetRecord) -> bool:
        return any(Path(rec.path).is_relative_to(r) for r in self.roots) and Path(rec.path).exists()

    def _revive(self) -> None:
        """Serve again the absent registrations whose path is back (caller holds the lock)."""
        for key, rec in list(self._absent.items()):
            if self._servable(rec):
                log.info("datasets: %s is back at %s", key, rec.path)
                self._records[key] = self._absent.pop(key)

    def list(self) -> list[DatasetRecord]:
        with self._lock:
            self._revive()
            return sorted(self._records.values(), key=lambda r: r.name)

    def get(self, dataset_id: str) -> DatasetRecord:
        with self._lock:
            if dataset_id in self._absent:
                self._revive()
            rec = self._records.get(dataset_id)
        if rec is None:
            raise UnknownDataset(f"datasets: expected a registered dataset id; got {dataset_id!r}")
        return rec

    # ---- data ---------------------------------------------------------------------------------
    def volume(self, dataset_id: str) -> Volume:
        rec = self.get(dataset_id)
        if rec.kind != "volume":
            raise ValueError(f"datasets: expected a volume dataset; got {rec.kind} {dataset_id!r}")
        with self._lock:
            vol = self._volumes.get(dataset_id)
            if vol is not None:
                self._volumes.move_to_end(dataset_id)
                return vol
            loading = self._loading.setdefault(dataset_id, threading.Lock())
        with loading:  # one load per dataset; other datasets and list() stay responsive meanwhile
            with self._lock:
                vol = self._volumes.get(dataset_id)
            if vol is None:
                vol = self._load_volume(rec)
                with self._lock:
                    self._volumes[dataset_id] = vol
                    self._evict(keep=dataset_id)
            return vol

    def _evict(self, keep: str) -> None:
        """Drop least recently used volumes until the loaded ones fit the budget (never ``keep``)."""

        def size(v: Volume) -> int:
            return v.data.nbytes + (v.labels.nbytes if v.labels is not None else 0)

        total = sum(size(v) for v in self._volumes.values())
        for key in list(self._volumes):
            if total <= self.max_loaded_bytes:
                break
            if key != keep:
                total -= size(self._volumes.pop(key))

    def loaded(self) -> list[str]:
        """Ids of the volumes in memory, least recently used first."""
        with self._lock:
            return list(self._volumes)

    def _load_volume(self, rec: DatasetRecord) -> Volume:
        p = Path(rec.path)
        mask = Path(rec.mask_path) if rec.mask_path else None
        files = self.confine_files(rec)  # again at load: files may have changed since registration
        if rec.format == "seed":
            return loaders.load_volume(p / loaders.read_seed_meta(p)["image"], mask)
        if rec.format == "arrays":
            return dataconfig.load_array_volume(p, _entries(p))
        if rec.format == "dicom":
            vol, rec.series_uid = loaders.load_dicom_volume(p, mask, files)
            return vol
        return loaders.load_volume(p, mask)

    def tiles(self, dataset_id: str) -> TileServer:
        rec = self.get(dataset_id)
        if rec.kind not in ("slide", "image"):
            raise ValueError(f"datasets: expected a slide or image dataset; got {rec.kind} {dataset_id!r}")
        with self._lock:
            ts = self._tiles.get(dataset_id)
            if ts is None:
                p = Path(rec.path)
                if rec.kind == "slide":
                    src = SlideSource(p)
                elif rec.format == "arrays":
                    self.confine_files(rec)
                    src = ArraySource(*dataconfig.load_array_image(p, _entries(p)))
                else:
                    src = ArraySource(*loaders.load_image(p))
                ts = TileServer(src, tile_size=getattr(src, "native_tile", 256))
                self._tiles[dataset_id] = ts
            return ts

    def info(self, dataset_id: str) -> dict[str, Any]:
        """Record fields plus geometry (volumes) or levels (slides/images); loads the data."""
        rec = self.get(dataset_id)
        out: dict[str, Any] = asdict(rec)
        if rec.kind == "volume":
            vol = self.volume(dataset_id)
            out.update(
                shape_zyx=list(vol.shape_zyx),
                dtype=str(vol.data.dtype),
                geometry=vol.geometry.to_dict(),
                has_geometry=vol.has_geometry,
                value_range=list(vol.value_range()),
                center_mm=vol.center_mm.tolist(),
                label_values=sorted(int(v) for v in set(vol.labels.ravel().tolist()) - {0})
                if vol.labels is not None
                else [],
            )
        else:
            ts = self.tiles(dataset_id)
            out.update(
                levels=[asdict(lv) for lv in ts.levels],
                tile_size=ts.tile_size,
                mpp=ts.source.mpp or 0.0,
                label_values=[],
            )
        return out

    # ---- persistence --------------------------------------------------------------------------
    def _index_path(self) -> Path:
        return self.state_dir / "datasets.json"

    def _save_index(self) -> None:
        """Durably, before the registration is acknowledged (absent ones kept)."""
        records = [*self._records.values(), *(r for k, r in self._absent.items() if k not in self._records)]
        write_durably(self._index_path(), json.dumps([asdict(r) for r in records], indent=2))

    def _load_index(self) -> None:
        """Registrations of the previous run; a missing path is kept as absent, an unreadable index
        is set aside (``datasets.json.corrupt``) with an error, so the service still starts."""
        path = self._index_path()
        if not path.is_file():
            return
        try:
            docs = json.loads(path.read_text())
            records = [DatasetRecord(**d) for d in docs]
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
            aside = path.with_name(path.name + ".corrupt")
            path.replace(aside)
            log.error("datasets: expected a JSON list of registrations in %s; got %s (kept as %s)", path, exc, aside)
            return
        for rec in records:
            if self._servable(rec):
                self._records[rec.id] = rec
            else:
                log.warning("datasets: %s not served until %s is back under a root", rec.id, rec.path)
                self._absent[rec.id] = rec

    def close(self) -> None:
        with self._lock:
            for ts in self._tiles.values():
                ts.close()
            self._tiles.clear()
