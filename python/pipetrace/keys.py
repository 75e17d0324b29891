"""The key of the keyed row hash: where it comes from, and the id that names it.

With a key, each step's ``row_hash`` is HMAC-SHA256 over its canonical encoding instead of a
plain SHA-256: someone who can write the table but does not hold the key cannot recompute a
hash that verifies. The key is never stored in the table or in Spark conf (the Spark UI shows
conf values): it comes from a file (``attach(hmac_key_file=...)``,
``spark.pipetrace.hmac_key_file``, ``pipetrace verify --key-file``) or from the environment
variable ``PIPETRACE_HMAC_KEY``, which a Databricks cluster can fill from a secret. The rules
match jvm_shim's HmacKey.java (tests/fixtures/tamper.json holds a key and its id): spaces, tabs
and line ends around the key are not part of it, and it must have at least 16 bytes.

Example::

    >>> key_id(b"correct horse battery staple")
    'feadf1de7459ee75'
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from pipetrace.errors import ConfigError

__all__ = ["ENV_VAR", "MIN_KEY_BYTES", "key_id", "load_key", "mac"]

ENV_VAR = "PIPETRACE_HMAC_KEY"
MIN_KEY_BYTES = 16
_ID_LABEL = b"pipetrace key id"
_BLANK = b" \t\r\n"


def load_key(key_file: str | Path | None = None, *,
             environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key from ``key_file``, else from ``$PIPETRACE_HMAC_KEY``; None when neither is set.

    Raises :class:`ConfigError` when the file cannot be read or the key is too short.

    Example::

        >>> load_key(environ={"PIPETRACE_HMAC_KEY": "0123456789abcdef0123\\n"})
        b'0123456789abcdef0123'
        >>> load_key(environ={}) is None
        True
    """
    if key_file is not None:
        source = str(key_file)
        try:
            raw = Path(key_file).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the HMAC key file {key_file}: {exc.strerror or exc}; "
                              "check the path (--key-file, hmac_key_file)") from None
    else:
        source = f"${ENV_VAR}"
        value = (os.environ if environ is None else environ).get(ENV_VAR)
        if not value:
            return None
        raw = value.encode("utf-8", "surrogateescape")
    key = raw.strip(_BLANK)
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"the HMAC key from {source} has {len(key)} bytes; use at least "
                          f"{MIN_KEY_BYTES}, e.g. from `openssl rand -hex 32`")
    return key


def key_id(key: bytes) -> str:
    """A name for the key that does not reveal it: 16 hex digits of HMAC(key, a fixed label).

    Example::

        >>> len(key_id(b"0123456789abcdef"))
        16
    """
    return hmac.new(key, _ID_LABEL, hashlib.sha256).hexdigest()[:16]


def mac(key: bytes, data: bytes) -> str:
    """Hex HMAC-SHA256 of ``data`` under ``key``: the keyed row hash.

    Example::

        >>> len(mac(b"0123456789abcdef", b"(n)"))
        64
    """
    return hmac.new(key, data, hashlib.sha256).hexdigest()
