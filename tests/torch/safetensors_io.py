"""Minimal safetensors reader and writer in pure Python + numpy.

Debian ships no python safetensors package, so the parity tests read and write the engine's weight
files with this module. It follows the same rules as the reference library (and engine/safetensors.cpp):
little-endian u64 header length, JSON header, tensors tiling the data buffer with no gaps.

    load(path) -> (dict name -> numpy array, dict metadata)
    load_torch(path) -> (dict name -> torch tensor, dict metadata)
    save(path, dict name -> numpy array or torch tensor, metadata=None)

BF16 has no numpy dtype: load() returns it widened to float32 (load_torch() as torch.bfloat16); save() accepts it as a torch.bfloat16
tensor. torch is imported only when a torch tensor is passed.
"""
import json
import os
import struct

import numpy as np

_NUMPY_OF = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_SIZE_OF = {name: dt.itemsize for name, dt in _NUMPY_OF.items()}
_SIZE_OF["BF16"] = 2
_NAME_OF = {dt.newbyteorder("<") if dt.itemsize > 1 else dt: name for name, dt in _NUMPY_OF.items()}
_MAX_HEADER = 100_000_000


class SafetensorsError(ValueError):
    pass


def _fail(path, msg):
    raise SafetensorsError(f"safetensors '{path}': {msg}")


def _load_raw(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        _fail(path, f"file is {len(data)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > _MAX_HEADER:
        _fail(path, f"header length {n} runs past the end of the {len(data)}-byte file")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        _fail(path, f"header is not valid JSON: {e}")
    if not isinstance(header, dict):
        _fail(path, "header is not a JSON object")
    buf = memoryview(data)[8 + n:]
    metadata = header.pop("__metadata__", None) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        _fail(path, "__metadata__ is not a map of strings")

    tensors, spans = {}, []
    for name, e in header.items():
        if not isinstance(e, dict) or not {"dtype", "shape", "data_offsets"} <= e.keys():
            _fail(path, f"tensor '{name}': entry needs dtype, shape and data_offsets")
        dtype, shape, (begin, end) = e["dtype"], list(e["shape"]), e["data_offsets"]
        if dtype not in _SIZE_OF:
            _fail(path, f"tensor '{name}': unknown dtype '{dtype}'")
        if any((not isinstance(d, int)) or d < 0 for d in shape):
            _fail(path, f"tensor '{name}': bad shape {shape}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * _SIZE_OF[dtype]
        if not (0 <= begin <= end) or end - begin != nbytes:
            _fail(path, f"tensor '{name}': data_offsets [{begin},{end}] do not match {dtype} {shape}")
        if end > len(buf):
            _fail(path, f"tensor '{name}': data_offsets [{begin},{end}] outside the {len(buf)}-byte buffer")
        tensors[name] = (dtype, shape, bytes(buf[begin:end]))
        spans.append((begin, end, name))
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            _fail(path, f"tensor '{name}' starts at {begin} but the previous one ends at {pos}")
        pos = end
    if pos != len(buf):
        _fail(path, f"tensors cover {pos} bytes but the buffer holds {len(buf)}")
    return tensors, dict(metadata)


def load(path):
    raw, metadata = _load_raw(path)
    tensors = {}
    for name, (dtype, shape, data) in raw.items():
        if dtype == "BF16":
            bits = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(data, dtype=_NUMPY_OF[dtype]).copy()
        tensors[name] = arr.reshape(shape)
    return tensors, metadata


def load_torch(path):
    """Like load(), but torch tensors, BF16 as torch.bfloat16 (bit for bit)."""
    import torch

    raw, metadata = _load_raw(path)
    tensors = {}
    for name, (dtype, shape, data) in raw.items():
        if dtype == "BF16":
            t = torch.frombuffer(bytearray(data), dtype=torch.bfloat16) if data else torch.empty(0, dtype=torch.bfloat16)
        else:
            t = torch.from_numpy(np.frombuffer(data, dtype=_NUMPY_OF[dtype]).copy())
        tensors[name] = t.reshape(shape)
    return tensors, metadata


def _to_dtype_and_bytes(name, value):
    if not isinstance(value, np.ndarray):
        import torch  # only needed when torch tensors are passed

        if not isinstance(value, torch.Tensor):
            raise TypeError(f"tensor '{name}': expected a numpy array or torch tensor, got {type(value)}")
        value = value.detach().cpu().contiguous()
        if value.dtype == torch.bfloat16:
            return "BF16", list(value.shape), value.view(torch.int16).numpy().astype("<i2").tobytes()
        value = value.numpy()
    # asarray keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d).
    arr = np.asarray(value, order="C")
    key = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
    if key not in _NAME_OF:
        raise TypeError(f"tensor '{name}': unsupported dtype {arr.dtype}")
    return _NAME_OF[key], list(arr.shape), arr.astype(key, copy=False).tobytes()


def save(path, tensors, metadata=None):
    metadata = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("metadata must map strings to strings")
    items = [(name,) + _to_dtype_and_bytes(name, t) for name, t in tensors.items()]
    # Same order as the reference library: larger elements first, then by name, so every tensor
    # is aligned to its element size without gaps.
    items.sort(key=lambda it: (-_SIZE_OF[it[1]], it[0]))
    header, offset = {}, 0
    for name, dtype, shape, raw in items:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for _, _, _, raw in items:
                f.write(raw)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
