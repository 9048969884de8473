"""The render server's view of a separate dataset service (the article's ``dataset-service`` container).

The dataset service owns the registrations; the render server asks it for them over gRPC and reads
the pixels itself from the shared dataset volume (the same ``DATASET_REPO_PATH`` mounted in both
containers). Every path the dataset service names is confined again to the render server's own
roots, so a compromised or misconfigured dataset service cannot make it read outside them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from clara_stream.render import loaders
from clara_stream.render.client import RenderClient
from clara_stream.render.convert import KIND_TO_PB
from clara_stream.render.datasets import DatasetRecord, DatasetRegistry, PathNotAllowed
from clara_stream.render.proto import render_pb2 as pb

log = logging.getLogger(__name__)
KIND_FROM_PB = {v: k for k, v in KIND_TO_PB.items()}


class RemoteRegistry(DatasetRegistry):
    """A :class:`DatasetRegistry` whose records come from the dataset service at ``address``.

    Records are fetched on demand (an unknown id, ``list``) and cached; a record whose path or mask
    changed on the dataset service drops its loaded data. Registration is forwarded. Loaded volumes
    and tiles, settings and hints stay local to this process, as in :class:`DatasetRegistry`.

    Parameters
    ----------
    address : str
        ``host:port`` of the dataset service.
    roots, state_dir, max_loaded_gb
        As :class:`DatasetRegistry`; ``roots`` are where the shared dataset volume is mounted here.
    token : str
        Bearer token of the dataset service.

    Raises
    ------
    grpc.RpcError
        From any method that asks the dataset service (UNAVAILABLE while it is down); the servicers
        pass its status code on.
    """

    def __init__(
        self, address: str, roots: list[Path], state_dir: Path, max_loaded_gb: float = 8.0, token: str = ""
    ) -> None:
        if not address:
            raise ValueError("RemoteRegistry: expected the dataset service address HOST:PORT; got ''")
        self.client = RenderClient(address, token=token, timeout_s=30)
        self._refused: dict[str, Exception] = {}
        super().__init__(roots, state_dir, max_loaded_gb)

    def _record(self, info: pb.DatasetInfo) -> DatasetRecord:
        path = self.confine(info.path)
        rec = DatasetRecord(
            id=info.id,
            name=info.name,
            kind=KIND_FROM_PB.get(info.kind, "volume"),
            format=info.format,
            path=str(path),
            mask_path=str(self.confine(info.mask_path)) if info.mask_path else "",
            series_uid=info.series_uid,
        )
        if rec.format in ("seed", "arrays"):
            rec.labels = loaders.read_seed_meta(path).get("labels")
        self.confine_files(rec)
        return rec

    def sync(self) -> None:
        """Refresh the records from the dataset service (one List call)."""
        fresh, refused = {}, {}
        for info in self.client.list():
            try:
                fresh[info.id] = self._record(info)
            except (PathNotAllowed, FileNotFoundError, ValueError) as exc:
                refused[info.id] = exc
        for key in refused.keys() - self._refused.keys():
            log.warning("render: dataset %s from the dataset service refused here: %s", key, refused[key])
        with self._lock:
            self._refused = refused
            for key, rec in fresh.items():
                old = self._records.get(key)
                if old is not None and (old.path, old.mask_path) != (rec.path, rec.mask_path):
                    self._volumes.pop(key, None)
                    ts = self._tiles.pop(key, None)
                    if ts is not None:
                        ts.close()
                if old is not None and old.series_uid and not rec.series_uid:
                    rec.series_uid = old.series_uid
            self._records = fresh

    def get(self, dataset_id: str) -> DatasetRecord:
        with self._lock:
            known = dataset_id in self._records
        if not known:
            self.sync()
        if dataset_id in self._refused:
            exc = self._refused[dataset_id]
            raise type(exc)(str(exc))
        return super().get(dataset_id)

    def list(self) -> list[DatasetRecord]:
        self.sync()
        return super().list()

    def register(self, path: str | Path, name: str = "", mask: str | Path = "", dataset_id: str = "") -> DatasetRecord:
        """Forwarded to the dataset service (which confines and probes it), then fetched back."""
        info = self.client.register(str(path), name=name, mask_path=str(mask or ""), dataset_id=dataset_id)
        self.sync()
        return super().get(info.id)

    def _load_index(self) -> None:  # the dataset service keeps the registrations
        pass

    def _save_index(self) -> None:
        pass

    def close(self) -> None:
        super().close()
        self.client.close_channel()
