"""Element types a checkpoint may hold, named as torch names them, with their widths.

Both readers translate their format's own spelling (safetensors' "F32", torch's
`FloatStorage` class or `torch.float32` global) into one vocabulary so that a diff can
compare a tensor across formats. Widths are in bits: a few types pack several elements
into a byte.
"""

from __future__ import annotations

BITS: dict[str, int] = {
    "bool": 8,
    "uint8": 8,
    "int8": 8,
    "int16": 16,
    "uint16": 16,
    "int32": 32,
    "uint32": 32,
    "int64": 64,
    "uint64": 64,
    "float16": 16,
    "bfloat16": 16,
    "float32": 32,
    "float64": 64,
    "complex32": 32,
    "complex64": 64,
    "complex128": 128,
    "float8_e4m3fn": 8,
    "float8_e4m3fnuz": 8,
    "float8_e5m2": 8,
    "float8_e5m2fnuz": 8,
    "float8_e8m0fnu": 8,
    "float6_e2m3": 6,
    "float6_e3m2": 6,
    "float4_e2m1": 4,
    "float4_e2m1fn_x2": 8,
    "bits8": 8,
    "bits16": 16,
    "bits1x8": 8,
    "bits2x4": 8,
    "bits4x2": 8,
}
"""Width of one element of each dtype, in bits."""

SAFETENSORS_DTYPES: dict[str, str] = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "U16": "uint16",
    "I32": "int32",
    "U32": "uint32",
    "I64": "int64",
    "U64": "uint64",
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "C64": "complex64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E8M0": "float8_e8m0fnu",
    "F6_E2M3": "float6_e2m3",
    "F6_E3M2": "float6_e3m2",
    "F4": "float4_e2m1",
}
"""safetensors' dtype names (the format's `Dtype` enum) -> torch's names."""

TORCH_STORAGE_CLASSES: dict[str, str] = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
}
"""The legacy typed storage classes (`torch.FloatStorage` ...) torch.save names for the
classic dtypes, and the dtype each one stands for. Quantized storages are left out on
purpose: their tensors need `_rebuild_qtensor`, which the reader does not allow."""

TORCH_DTYPE_GLOBALS: frozenset[str] = frozenset(BITS) - {
    "float6_e2m3",
    "float6_e3m2",
    "float4_e2m1",
}
"""`torch.<name>` dtype globals, written next to an untyped storage for newer dtypes
(uint16, float8 ...). Only names of real torch dtypes (no safetensors-only types)."""


def byte_size(dtype: str, count: int) -> int | None:
    """Bytes taken by `count` elements of `dtype`, or None if they do not fill whole bytes."""
    bits = BITS[dtype] * count
    return bits // 8 if bits % 8 == 0 else None
