"""The service's ed25519 key: its access tokens, its JWKS, and the DCI `signature` of what it answers.

DCI messages carry `signature`: "Signature of {header}+{message} verified using sender's signing public key",
in the form `Signature: namespace="spdci", kidId="{sender_id}|{unique_key_id}|{algorithm}", algorithm="ed25519",
created="…", expires="…", headers="(created) (expires) digest", signature="Base64(…)"`. What is signed is the
signing string of those three headers, as HTTP signatures (draft-cavage) build it:

    (created): 1606970629
    (expires): 1607030629
    digest: BLAKE-512=<base64 of the BLAKE2b-512 of the message>

where the message is the JSON of {"header": …, "message": …} with sorted keys and no spaces (UTF-8), so a
verifier that parsed the body can rebuild it byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from benefitflow.core import file_store

KEY_VARIABLE = "BENEFITFLOW_REGISTRY_API_SIGNING_KEY"
SERVICE_ID = "benefitflow.registry"  # sender_id of what the service signs, and its tokens' issuer
TOKEN_AUDIENCE = "benefitflow-registry-api"
TOKEN_SECONDS = 3600
SIGNATURE_SECONDS = 300
MAX_SIGNATURE_SECONDS = 600
CLOCK_SKEW_SECONDS = 60
_PARAMETER = re.compile(r'(\w+)="([^"]*)"')


class SignatureRefused(ValueError):
    """A request's signature is missing, malformed, expired or does not verify; the message says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # err.signature.missing or err.signature.invalid


# -- the key ---------------------------------------------------------------------------------------------------
def create_key(path: Path) -> None:
    """A new private key for an installation, 0600 from the moment it exists (kept if one is there)."""
    if path.exists():
        return
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    file_store.write_secret(path, pem.decode())


@cache
def private_key() -> Ed25519PrivateKey:
    path = os.environ.get(KEY_VARIABLE)
    if not path:
        raise RuntimeError(f"{KEY_VARIABLE} is not set: it names the registry API's ed25519 key (PEM)")
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"{path} is not an ed25519 key")
    return key


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@cache
def key_id() -> str:
    """RFC 7638 thumbprint of the public key, as the JWKS names it."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw_public_key(private_key().public_key()))}
    return _b64url(hashlib.sha256(json.dumps(members, sort_keys=True, separators=(",", ":")).encode()).digest())


def jwks() -> dict[str, Any]:
    public = _b64url(raw_public_key(private_key().public_key()))
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": public, "kid": key_id(), "use": "sig", "alg": "EdDSA"}]}


# -- access tokens ---------------------------------------------------------------------------------------------
def issue_token(client_id: str, scope: str) -> str:
    now = int(time.time())
    claims = {"iss": SERVICE_ID, "aud": TOKEN_AUDIENCE, "sub": client_id, "scope": scope, "iat": now,
              "exp": now + TOKEN_SECONDS, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, private_key(), algorithm="EdDSA", headers={"kid": key_id()})


def token_client(token: str) -> str | None:
    """The client id an access token was issued to; None when it is not one of ours, or has expired."""
    try:
        claims = jwt.decode(token, private_key().public_key(), algorithms=["EdDSA"], audience=TOKEN_AUDIENCE,
                            issuer=SERVICE_ID, options={"require": ["exp", "sub", "iat"]})
    except jwt.PyJWTError:
        return None
    return str(claims["sub"])


# -- DCI signatures --------------------------------------------------------------------------------------------
def canonical(header: Any, message: Any) -> bytes:
    return json.dumps({"header": header, "message": message}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def _signing_string(created: int, expires: int, body: bytes) -> bytes:
    digest = base64.b64encode(hashlib.blake2b(body, digest_size=64).digest()).decode()
    return f"(created): {created}\n(expires): {expires}\ndigest: BLAKE-512={digest}".encode()


def sign(header: Any, message: Any, key: Ed25519PrivateKey | None = None, sender_id: str = SERVICE_ID,
         key_name: str | None = None) -> str:
    key = key or private_key()
    created = int(time.time())
    expires = created + SIGNATURE_SECONDS
    value = base64.b64encode(key.sign(_signing_string(created, expires, canonical(header, message)))).decode()
    return (f'Signature: namespace="spdci", kidId="{sender_id}|{key_name or key_id()}|ed25519", '
            f'algorithm="ed25519", created="{created}", expires="{expires}", '
            f'headers="(created) (expires) digest", signature="{value}"')


@dataclass(frozen=True)
class Verified:
    sender_id: str
    key_name: str


def verify(signature: Any, header: Any, message: Any, public_key_b64: str) -> Verified:
    """Check a request's signature with its sender's public key (raw 32 bytes, base64); refuse with why."""
    if not signature:
        raise SignatureRefused("err.signature.missing", "this client's requests must be signed (signature)")
    if not isinstance(signature, str) or len(signature) > 2000:
        raise SignatureRefused("err.signature.invalid", "signature must be the DCI Signature string")
    parameters = dict(_PARAMETER.findall(signature))
    try:
        sender_id, key_name, algorithm = parameters["kidId"].split("|")
        created, expires = int(parameters["created"]), int(parameters["expires"])
        value = base64.b64decode(parameters["signature"], validate=True)
    except (KeyError, ValueError) as exc:
        raise SignatureRefused("err.signature.invalid",
                               "signature lacks kidId, created, expires or signature, or one is malformed") from exc
    if algorithm != "ed25519" or parameters.get("algorithm", "ed25519") != "ed25519":
        raise SignatureRefused("err.signature.invalid", "signature algorithm must be ed25519")
    now = time.time()
    if created > now + CLOCK_SKEW_SECONDS or expires < now - CLOCK_SKEW_SECONDS or expires < created:
        raise SignatureRefused("err.signature.invalid", "signature is expired or not yet valid (created, expires)")
    if expires - created > MAX_SIGNATURE_SECONDS:  # a captured message cannot be replayed for long
        raise SignatureRefused("err.signature.invalid", f"a signature may live {MAX_SIGNATURE_SECONDS} s at most")
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        public.verify(value, _signing_string(created, expires, canonical(header, message)))
    except (InvalidSignature, ValueError) as exc:
        raise SignatureRefused("err.signature.invalid", "signature does not verify with this client's key") from exc
    return Verified(sender_id, key_name)
