"""Deterministic payloads shared by the test servers and the tests.

The servers build what they send from these functions and the tests build what
they expect from the same functions, so a message corrupted, truncated,
reordered or re-split anywhere on the way shows up as a mismatch.
"""

from __future__ import annotations

import functools
import random

# Characters of 1, 2, 3 and 4 UTF-8 bytes, so text payloads exercise decoding.
_ALPHABET = "aZ09 é€𝄞жß漢字"
_UNIT = "".join(random.Random(0x5EED).choices(_ALPHABET, k=997))

Message = str | bytes


@functools.lru_cache(maxsize=16)
def text_payload(nbytes: int) -> str:
    """A str whose UTF-8 encoding is exactly ``nbytes`` long, mostly non-ASCII."""
    parts: list[str] = []
    size = 0
    index = 0
    while True:
        piece = f"<{index}>{_UNIT}"
        piece_size = len(piece.encode())
        if size + piece_size > nbytes:
            break
        parts.append(piece)
        size += piece_size
        index += 1
    for char in f"<{index}>{_UNIT}":
        char_size = len(char.encode())
        if size + char_size > nbytes:
            break
        parts.append(char)
        size += char_size
    parts.append("~" * (nbytes - size))
    return "".join(parts)


@functools.lru_cache(maxsize=16)
def binary_payload(nbytes: int) -> bytes:
    """``nbytes`` pseudo-random bytes (seeded by the size, so reproducible)."""
    return random.Random(nbytes).randbytes(nbytes)


def payload(kind: str, nbytes: int) -> Message:
    """``text_payload`` or ``binary_payload`` depending on ``kind``."""
    if kind == "text":
        return text_payload(nbytes)
    if kind == "binary":
        return binary_payload(nbytes)
    raise ValueError(f"unknown payload kind {kind!r}")


def split_bytes(data: bytes, count: int) -> list[bytes]:
    """Split ``data`` into ``count`` pieces at arbitrary (even mid-character) offsets.

    Pieces may be empty when ``count`` exceeds ``len(data)``.
    """
    bounds = [len(data) * i // count for i in range(count + 1)]
    return [data[bounds[i] : bounds[i + 1]] for i in range(count)]


def flood_message(index: int, nbytes: int) -> str:
    """Message number ``index`` of the /flood path: ASCII, exactly ``nbytes`` long."""
    head = f"msg-{index}:"
    if len(head) > nbytes:
        raise ValueError(f"flood messages need at least {len(head)} bytes")
    return head + "." * (nbytes - len(head))


def describe_mismatch(got: object, expected: Message) -> str | None:
    """None if ``got`` equals ``expected`` exactly (type included), else a short reason.

    Avoids handing multi-megabyte values to pytest's assertion diff.
    """
    if type(got) is not type(expected):
        return f"type {type(got).__name__} != {type(expected).__name__}"
    assert isinstance(got, (str, bytes))
    if len(got) != len(expected):
        return f"length {len(got)} != {len(expected)}"
    if got == expected:
        return None
    first = next(i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b)
    return f"first difference at index {first}: {got[first : first + 16]!r} != {expected[first : first + 16]!r}"
