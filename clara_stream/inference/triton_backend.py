"""Triton Inference Server backend over tritonclient (gRPC or HTTP)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from clara_stream.inference.base import InferenceBackend, TensorSpec, free_dims


class TritonBackend(InferenceBackend):
    """Send inference requests to a running Triton server.

    Parameters
    ----------
    url : str
        ``host:port`` of the server's gRPC (``protocol="grpc"``) or HTTP endpoint.
    model_name : str
        Model in the server's repository.
    model_version : str
        Version; ``""`` lets the server choose (its version policy).
    protocol : {"grpc", "http"}
    timeout_s : float
        Network timeout per request.

    Raises
    ------
    ValueError
        Unknown protocol.
    ConnectionError
        The server cannot be reached, or the model is not ready on it.

    Notes
    -----
    Names, shapes and dtypes come from the server's model metadata; ``max_batch_size`` from its
    model config (a batch larger than it is split into several requests).

    Each thread gets its own client, made on its first request: tritonclient's HTTP client runs
    on a gevent hub bound to the thread that created it, and using it from another thread (the
    engine's worker, while the app was built on the main thread) crashed the process (SIGSEGV).
    The gRPC client is thread-safe but is kept per thread too, so both protocols behave alike.
    """

    kind = "triton"

    def __init__(
        self,
        *,
        url: str,
        model_name: str,
        model_version: str = "",
        protocol: str = "grpc",
        timeout_s: float = 30.0,
    ):
        if protocol not in ("grpc", "http"):
            raise ValueError(f"TritonBackend: expected protocol 'grpc' or 'http'; got {protocol!r}")
        if protocol == "grpc":
            import tritonclient.grpc as tc
        else:
            import tritonclient.http as tc
        from tritonclient.utils import triton_to_np_dtype

        self._tc, self.protocol, self.url = tc, protocol, url
        self.model_name, self.model_version = model_name, str(model_version or "")
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        try:
            client = self._client()
            ready = client.is_model_ready(model_name, self.model_version)
        except Exception as exc:  # tritonclient raises InferenceServerException and socket errors
            self.close()
            raise ConnectionError(f"TritonBackend: expected a Triton server at {protocol}://{url}; got {exc}") from exc
        if not ready:
            self.close()
            raise ConnectionError(
                f"TritonBackend: expected model {model_name!r} (version {self.model_version or 'any'}) "
                f"ready on {protocol}://{url}; got not ready"
            )
        as_json = {"as_json": True} if protocol == "grpc" else {}
        meta = client.get_model_metadata(model_name, self.model_version, **as_json)
        config = client.get_model_config(model_name, self.model_version, **as_json)
        config = config.get("config", config)
        self._max_batch = int(config.get("max_batch_size", 0) or 0)

        def spec(d: dict[str, Any]) -> TensorSpec:
            shape = [int(v) for v in d["shape"]]
            return TensorSpec(d["name"], free_dims(shape), np.dtype(triton_to_np_dtype(d["datatype"])))

        self._inputs = tuple(spec(d) for d in meta["inputs"])
        self._outputs = tuple(spec(d) for d in meta["outputs"])
        self._dtypes = {d["name"]: d["datatype"] for d in meta["inputs"]}

    def _client(self) -> Any:
        """This thread's client (made on first use in the thread)."""
        client = getattr(self._local, "client", None)
        if client is None:
            kw: dict[str, Any] = {"network_timeout": self._timeout_s} if self.protocol == "http" else {}
            client = self._tc.InferenceServerClient(url=self.url, **kw)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    @property
    def clients(self) -> int:
        """How many per-thread clients were made (one per thread that used the backend)."""
        return len(self._clients)

    @property
    def max_batch(self) -> int | None:
        return self._max_batch if self._max_batch > 0 else super().max_batch

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tc = self._tc
        inputs = []
        for name, arr in feeds.items():
            item = tc.InferInput(name, list(arr.shape), self._dtypes[name])
            item.set_data_from_numpy(arr)
            inputs.append(item)
        outputs = [tc.InferRequestedOutput(s.name) for s in self._outputs]
        kw: dict[str, Any] = {"client_timeout": self._timeout_s} if self.protocol == "grpc" else {}
        result = self._client().infer(self.model_name, inputs, model_version=self.model_version, outputs=outputs, **kw)
        return {s.name: result.as_numpy(s.name) for s in self._outputs}

    def close(self) -> None:
        """Close every thread's client (idempotent; a client is closed from this thread, which
        tritonclient allows once no request is in flight)."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        self._local = threading.local()
