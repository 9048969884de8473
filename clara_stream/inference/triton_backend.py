"""Triton Inference Server backend over tritonclient (gRPC or HTTP)."""

from __future__ import annotations

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
        kw: dict[str, Any] = {"network_timeout": timeout_s} if protocol == "http" else {}
        self._client = tc.InferenceServerClient(url=url, **kw)
        try:
            ready = self._client.is_model_ready(model_name, self.model_version)
        except Exception as exc:  # tritonclient raises InferenceServerException and socket errors
            raise ConnectionError(f"TritonBackend: expected a Triton server at {protocol}://{url}; got {exc}") from exc
        if not ready:
            raise ConnectionError(
                f"TritonBackend: expected model {model_name!r} (version {self.model_version or 'any'}) "
                f"ready on {protocol}://{url}; got not ready"
            )
        as_json = {"as_json": True} if protocol == "grpc" else {}
        meta = self._client.get_model_metadata(model_name, self.model_version, **as_json)
        config = self._client.get_model_config(model_name, self.model_version, **as_json)
        config = config.get("config", config)
        self._max_batch = int(config.get("max_batch_size", 0) or 0)

        def spec(d: dict[str, Any]) -> TensorSpec:
            shape = [int(v) for v in d["shape"]]
            return TensorSpec(d["name"], free_dims(shape), np.dtype(triton_to_np_dtype(d["datatype"])))

        self._inputs = tuple(spec(d) for d in meta["inputs"])
        self._outputs = tuple(spec(d) for d in meta["outputs"])
        self._dtypes = {d["name"]: d["datatype"] for d in meta["inputs"]}
        self._timeout_s = timeout_s

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
        result = self._client.infer(self.model_name, inputs, model_version=self.model_version, outputs=outputs, **kw)
        return {s.name: result.as_numpy(s.name) for s in self._outputs}

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            client.close()
