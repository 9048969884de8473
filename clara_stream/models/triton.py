"""Triton model-configuration text (``config.pbtxt``) for the models the repository stores.

Pure text generation; ONNX tensor names/types/dims are read with the ``onnx`` package when present.
"""

from __future__ import annotations

from pathlib import Path

#: file suffix -> (Triton file name, platform or backend key, value)
FORMATS: dict[str, tuple[str, str, str]] = {
    ".onnx": ("model.onnx", "platform", "onnxruntime_onnx"),
    ".pt": ("model.pt", "platform", "pytorch_libtorch"),
    ".ts": ("model.pt", "platform", "pytorch_libtorch"),
    ".plan": ("model.plan", "platform", "tensorrt_plan"),
    ".engine": ("model.plan", "platform", "tensorrt_plan"),
    ".py": ("model.py", "backend", "python"),
}

# onnx TensorProto.DataType -> Triton data type
_ONNX_TYPES = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    4: "TYPE_UINT16",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    8: "TYPE_STRING",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    12: "TYPE_UINT32",
    13: "TYPE_UINT64",
    16: "TYPE_BF16",
}


def onnx_io(path: Path) -> tuple[list[dict], list[dict]]:
    """(inputs, outputs) of an ONNX model as [{name, data_type, dims}] (dynamic dims as -1).

    Raises ValueError if the file is not a loadable ONNX model.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends without a common base
        raise ValueError(f"models: expected a loadable ONNX model; got {type(exc).__name__} [{path}]") from None
    init = {i.name for i in model.graph.initializer}

    def describe(values) -> list[dict]:
        out = []
        for v in values:
            if v.name in init:
                continue
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            out.append({"name": v.name, "data_type": _ONNX_TYPES.get(t.elem_type, "TYPE_FP32"), "dims": dims})
        return out

    return describe(model.graph.input), describe(model.graph.output)


def config_pbtxt(name: str, suffix: str, inputs: list[dict] | None = None, outputs: list[dict] | None = None) -> str:
    """A Triton model config serving every stored version (``version_policy: { all {} }``)."""
    _, key, value = FORMATS[suffix]
    lines = [f'name: "{name}"', f'{key}: "{value}"', "max_batch_size: 0", "version_policy: { all {} }"]
    for section, tensors in (("input", inputs or []), ("output", outputs or [])):
        if not tensors:
            continue
        items = []
        for t in tensors:
            dims = ", ".join(str(d) for d in t["dims"])
            items.append(f'  {{ name: "{t["name"]}", data_type: {t["data_type"]}, dims: [ {dims} ] }}')
        lines.append(f"{section} [\n" + ",\n".join(items) + "\n]")
    if value == "onnxruntime_onnx":
        lines.append("instance_group [ { kind: KIND_CPU } ]")
    return "\n".join(lines) + "\n"
