"""Why a peer's certificate does not verify, and a TLS server that says so (issue 17 item 5).

Python's :mod:`ssl` gives a server two choices for client certificates: ask for none, or ask
and end the handshake with a fatal alert when the one presented does not verify (``CERT_OPTIONAL``
only lets a client present none). An MTA whose certificate does not verify then sees "lost
connection" and retries for days. The standard library has no verify callback to change that
ending, so this module is the one place that reaches past :mod:`ssl`'s public API (DESIGN rule
9; the contract is checked by ``tests/gateway/test_peer_certs.py``): through the OpenSSL library that
:mod:`ssl` itself runs on, it

- installs on a server context a verify callback (:func:`tolerate_unverified_clients`) that notes
  each verification error of the handshake and lets the handshake go on;
- reads, once the handshake is done, OpenSSL's own verdict on the client certificate
  (``SSL_get_verify_result``) and the errors noted (:func:`client_problem`), as a reason code.

The checks are OpenSSL's, unchanged: the trust store (``tls.ca_file``), the intermediates the
client sent, the validity dates, the purpose; only the ending changes, and the caller must treat
a certificate with a problem as no certificate at all (the MX refuses ``MAIL FROM``, SPEC §6).
Where the interpreter is not one this module knows (another Python implementation, a
free-threaded build, a layout that does not check out) nothing is installed and the context keeps
ending the handshake as before.

:func:`reason_for` names the same reasons for our own outbound deliveries
(``ssl.SSLCertVerificationError.verify_code``).
"""

from __future__ import annotations

import _ssl
import ctypes
import logging
import ssl
import sys
import sysconfig
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Final

log = logging.getLogger("gateway.net.tls")

UNTRUSTED_ISSUER: Final = "untrusted_issuer"
EXPIRED: Final = "expired"
NOT_YET_VALID: Final = "not_yet_valid"
WRONG_NAME: Final = "wrong_name"  # outbound: the certificate is not the host's
INVALID: Final = "invalid"  # any other failure: signature, purpose, a CA as leaf, unreadable
UNCHECKED: Final = "unchecked"  # the verdict could not be read: treated as not verified

WORDS: Final = {
    UNTRUSTED_ISSUER: "untrusted issuer", EXPIRED: "certificate expired", NOT_YET_VALID: "certificate not yet valid",
    WRONG_NAME: "certificate not issued to this host", INVALID: "certificate does not verify",
    UNCHECKED: "certificate could not be checked",
}

# OpenSSL's X509_V_ERR_* codes (openssl/x509_vfy.h, stable since 1.1): the issuer is none we trust.
_UNTRUSTED = frozenset({2, 18, 19, 20, 21, 27, 28})  # no issuer, self-signed (leaf, chain), untrusted, rejected
_BY_CODE = {9: NOT_YET_VALID, 10: EXPIRED, 62: WRONG_NAME, 64: WRONG_NAME}  # + hostname / IP mismatch
_ORDER = (UNTRUSTED_ISSUER, EXPIRED, NOT_YET_VALID, WRONG_NAME, INVALID)  # the most telling first


def reason_for(codes: Iterable[int]) -> str:
    """The reason code for a failed verification's OpenSSL error codes (none: :data:`INVALID`)."""
    found = {UNTRUSTED_ISSUER if code in _UNTRUSTED else _BY_CODE.get(code, INVALID) for code in codes if code}
    return next((reason for reason in _ORDER if reason in found), INVALID)


_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_SSL_VERIFY_PEER = 0x01
_NOTED_MAX = 4096  # handshakes whose errors are held until read (a failed handshake's are never read)


class _OpenSsl:
    """The few OpenSSL functions used, from the library :mod:`_ssl` is linked with."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(_ssl.__file__)  # dlsym searches _ssl's own dependencies: its libssl/libcrypto
        vp, c_int = ctypes.c_void_p, ctypes.c_int
        self.ssl_ctx = _fn(lib.SSL_get_SSL_CTX, vp, [vp])
        self.set_verify = _fn(lib.SSL_CTX_set_verify, None, [vp, c_int, _VerifyCallback])
        self.verify_mode = _fn(lib.SSL_CTX_get_verify_mode, c_int, [vp])
        self.verify_result = _fn(lib.SSL_get_verify_result, ctypes.c_long, [vp])
        self.store_error = _fn(lib.X509_STORE_CTX_get_error, c_int, [vp])
        self.store_ex_data = _fn(lib.X509_STORE_CTX_get_ex_data, vp, [vp, c_int])
        self.ssl_index = int(_fn(lib.SSL_get_ex_data_X509_STORE_CTX_idx, c_int, [])())
        self.noted: OrderedDict[int, set[int]] = OrderedDict()  # SSL* -> the errors its verification met
        self.callback = _VerifyCallback(self._on_verify)  # held: OpenSSL keeps a bare pointer to it

    def _on_verify(self, ok: int, store: int | None) -> int:
        """OpenSSL's verify callback, on the loop's thread inside the handshake: note, never refuse."""
        if not ok and store:
            try:
                ssl_ptr = self.store_ex_data(store, self.ssl_index)
                if ssl_ptr:
                    self.noted.setdefault(ssl_ptr, set()).add(int(self.store_error(store)))
                    self.noted.move_to_end(ssl_ptr)
                    while len(self.noted) > _NOTED_MAX:
                        self.noted.popitem(last=False)
            except Exception:  # a callback must not raise into OpenSSL
                log.exception("client certificate note failed")
        return 1


def _fn(fn: Any, restype: Any, argtypes: list[Any]) -> Any:
    fn.restype, fn.argtypes = restype, argtypes
    return fn


_POINTER = ctypes.sizeof(ctypes.c_void_p)


def _ssl_pointer(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> int:
    """The ``SSL *`` of a connection: CPython's ``PySSLSocket`` is {PyObject_HEAD, Socket, ssl, ctx};
    the ``ctx`` member is checked against the object's context before the pointer is trusted."""
    inner = ssl_object._sslobj  # type: ignore[union-attr]
    base = object.__basicsize__
    if type(inner).__basicsize__ < base + 3 * _POINTER:
        raise LookupError("unknown _ssl layout")
    ctx_member = ctypes.c_void_p.from_address(id(inner) + base + 2 * _POINTER).value
    ssl_ptr = ctypes.c_void_p.from_address(id(inner) + base + _POINTER).value
    if ctx_member != id(inner.context) or not ssl_ptr:
        raise LookupError("unknown _ssl layout")
    return ssl_ptr


def _load() -> _OpenSsl | None:
    if sys.implementation.name != "cpython" or sysconfig.get_config_var("Py_GIL_DISABLED"):
        return None
    try:
        return _OpenSsl()
    except (OSError, AttributeError):
        return None


_openssl = _load()


def tolerate_unverified_clients(context: ssl.SSLContext) -> bool:
    """Make a server context that asks for client certificates complete the handshake when one does
    not verify (read the verdict with :func:`client_problem`). False: not possible here, the context
    is unchanged and still ends such handshakes."""
    if _openssl is None or context.verify_mode == ssl.CERT_NONE:
        return False
    try:
        probe = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
        ctx_ptr = _openssl.ssl_ctx(_ssl_pointer(probe))
    except (LookupError, AttributeError, ssl.SSLError):
        return False
    if not ctx_ptr or _openssl.verify_mode(ctx_ptr) & _SSL_VERIFY_PEER == 0:
        return False
    # CPython keeps the callback when verify_mode is set again (it reads it back first).
    _openssl.set_verify(ctx_ptr, _openssl.verify_mode(ctx_ptr), _openssl.callback)
    return True


def client_problem(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> str | None:
    """After a handshake on a tolerant context: None when the client presented no certificate or
    one that verified, else the reason code (:func:`reason_for`; :data:`UNCHECKED` when the
    verdict cannot be read)."""
    if not ssl_object.getpeercert(binary_form=True):
        return None
    if _openssl is None:
        return UNCHECKED
    try:
        ssl_ptr = _ssl_pointer(ssl_object)
    except (LookupError, AttributeError):
        return UNCHECKED
    noted = _openssl.noted.pop(ssl_ptr, set())
    result = int(_openssl.verify_result(ssl_ptr))
    if result == 0:  # X509_V_OK: verified as the handshake would have insisted
        return None
    return reason_for(noted | {result})
