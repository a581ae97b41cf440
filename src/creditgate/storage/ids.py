"""Identifiers: a type prefix and a time-ordered random part (sortable, like ULIDs)."""

from __future__ import annotations

import base64
import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_RANDOM_BITS = 80
_MILLIS_CHARS, _RANDOM_CHARS = 10, 16  # base32 digits: 50 bits of milliseconds, 80 random
# RFC 4648's base32 digits (what `base64.b32encode` writes) to Crockford's, in order.
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())

_lock = threading.Lock()
_last = (0, 0)


def _encode(millis: int, rand: int) -> str:
    """The id's 26 characters: `millis` in 10 base32 digits, then `rand` in 16, most
    significant first. Both as one 160-bit number, which base32 writes as 32 digits of 5
    bits each from the top: the last 26 are the 130 bits of the two."""
    value = ((millis & ((1 << 5 * _MILLIS_CHARS) - 1)) << _RANDOM_BITS) | rand
    digits = base64.b32encode(value.to_bytes(20, "big"))
    return digits[-(_MILLIS_CHARS + _RANDOM_CHARS) :].translate(_TO_CROCKFORD).decode()


def new_id(prefix: str) -> str:
    """`prefix_` + 10 chars of milliseconds + 16 chars of randomness.

    Within one process ids are strictly increasing, even within one millisecond, so a
    cursor over them follows creation order.
    """
    global _last
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(_RANDOM_BITS // 8), "big")
    with _lock:
        last_millis, last_rand = _last
        if millis <= last_millis:
            millis, rand = last_millis, last_rand + 1
            if rand >= 1 << _RANDOM_BITS:
                millis, rand = millis + 1, 0
        _last = (millis, rand)
    return f"{prefix}_{_encode(millis, rand)}"
