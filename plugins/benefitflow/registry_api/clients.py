"""Who may ask the registry API what: clients and their scopes (`clients.yaml`), and their secrets.

A scope is checked against the registry's own filter fields when the file is read, so a client can never be
given, or search on, a field the registry does not have; the secrets are the installation's (made by
`make up`, kept 0600 beside the other local secrets), compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from benefitflow.registry import registry_export

CLIENTS_FILE = Path(__file__).with_name("clients.yaml")
CLIENTS_VARIABLE = "BENEFITFLOW_REGISTRY_API_CLIENTS"
SECRETS_VARIABLE = "BENEFITFLOW_REGISTRY_API_SECRETS"
RECORD_TYPES = ("Member", "Group")
QUERY_TYPES = ("idtype-value", "predicate", "expression")
ALWAYS_GIVEN = ("individual_id",)  # a record's own id: what a client quotes back
# Answers name people: they travel encrypted, but to a receiver on this very machine (tests, a local relay).
CALLBACK_URL = re.compile(r"^(https://[^/@\s]+|http://(127\.0\.0\.1|localhost)(:[0-9]+)?)(/[^\s]*)?$")
DERIVED = {"age": "dob", "household_size": "household_code"}  # readable only with the field it comes from


class ClientConfigurationError(ValueError):
    """clients.yaml (or the secrets file) is wrong: the service does not start."""


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    record_types: frozenset[str]
    attributes: frozenset[str]  # registry fields it may read and search on
    query_types: frozenset[str]
    max_page_size: int
    requests_per_minute: int
    public_key: str | None = None
    require_signed_requests: bool = False
    callback_url: str | None = None  # where asynchronous answers go (never a URL a request names)

    def may_read(self, field: str) -> bool:
        return field in self.attributes


@dataclass(frozen=True)
class Settings:
    clients: dict[str, Client]
    identifier_types: dict[str, str]  # DCI identifier type -> registry field
    max_batch: int

    def identifier_type_of(self, field: str) -> str:
        """The first DCI identifier type the configuration maps to `field` (how records name it); unmapped, the
        field's own name in capitals."""
        return next((name for name, mapped in self.identifier_types.items() if mapped == field), field.upper())


def clients_file() -> Path:
    return Path(os.environ.get(CLIENTS_VARIABLE) or CLIENTS_FILE)


@cache
def settings() -> Settings:
    return parse(yaml.safe_load(clients_file().read_text()), str(clients_file()))


def parse(document: Any, where: str = "clients.yaml") -> Settings:
    if not isinstance(document, dict):
        raise ClientConfigurationError(f"{where}: expected a mapping")
    known_fields = frozenset(registry_export.fields())
    identifier_types = document.get("identifier_types") or {}
    for name, field in identifier_types.items():
        if field not in known_fields:
            raise ClientConfigurationError(f"{where}: identifier type {name} maps to unknown field {field!r}")
    default_page = _positive(document.get("max_page_size", 100), f"{where}: max_page_size")
    default_rate = _positive(document.get("requests_per_minute", 600), f"{where}: requests_per_minute")
    clients = {}
    for client_id, entry in (document.get("clients") or {}).items():
        clients[client_id] = _client(str(client_id), entry or {}, known_fields, default_page, default_rate,
                                     f"{where}: client {client_id}")
    return Settings(clients, dict(identifier_types), _positive(document.get("max_batch", 10), f"{where}: max_batch"))


def _client(client_id: str, entry: dict[str, Any], known_fields: frozenset[str], default_page: int,
            default_rate: int, where: str) -> Client:
    record_types = frozenset(entry.get("record_types") or ())
    query_types = frozenset(entry.get("query_types") or ())
    if not record_types or not record_types <= set(RECORD_TYPES):
        raise ClientConfigurationError(f"{where}: record_types must be some of {', '.join(RECORD_TYPES)}")
    if not query_types or not query_types <= set(QUERY_TYPES):
        raise ClientConfigurationError(f"{where}: query_types must be some of {', '.join(QUERY_TYPES)}")
    listed = entry.get("attributes")
    if listed == "*":
        attributes = set(known_fields)
    elif isinstance(listed, list) and listed:
        unknown = sorted(set(listed) - known_fields)
        if unknown:
            raise ClientConfigurationError(f"{where}: unknown attributes {unknown} (known: {sorted(known_fields)})")
        attributes = set(listed)
    else:
        raise ClientConfigurationError(f"{where}: attributes must be a list of registry fields or \"*\"")
    attributes |= set(ALWAYS_GIVEN)
    if "Group" in record_types:
        attributes.add("household_code")  # a household is named by its code
    attributes |= {derived for derived, source in DERIVED.items() if source in attributes}
    attributes -= {derived for derived, source in DERIVED.items() if source not in attributes}
    callback_url = entry.get("callback_url")
    if callback_url is not None and not (isinstance(callback_url, str) and CALLBACK_URL.match(callback_url)):
        raise ClientConfigurationError(f"{where}: callback_url must be an https URL without credentials "
                                       "(http only to this machine: 127.0.0.1 or localhost)")
    if entry.get("require_signed_requests") and not entry.get("public_key"):
        raise ClientConfigurationError(f"{where}: require_signed_requests needs the client's public_key")
    return Client(
        client_id=client_id,
        name=str(entry.get("name") or client_id),
        record_types=record_types,
        attributes=frozenset(attributes),
        query_types=query_types,
        max_page_size=_positive(entry.get("max_page_size", default_page), f"{where}: max_page_size"),
        requests_per_minute=_positive(entry.get("requests_per_minute", default_rate), f"{where}: requests_per_minute"),
        public_key=entry.get("public_key"),
        require_signed_requests=bool(entry.get("require_signed_requests", False)),
        callback_url=callback_url.rstrip("/") if callback_url else None,
    )


def _positive(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ClientConfigurationError(f"{where} must be a whole number of at least 1, got {value!r}")
    return value


# -- secrets -------------------------------------------------------------------------------------------------
def secrets_file() -> Path:
    value = os.environ.get(SECRETS_VARIABLE)
    if not value:
        raise ClientConfigurationError(f"{SECRETS_VARIABLE} is not set: it names the file of the clients' secrets")
    return Path(value)


def new_secrets(existing: dict[str, str], client_ids: list[str]) -> dict[str, str]:
    """Every configured client's secret: kept where one exists, made where not (an installation's own)."""
    return {client_id: existing.get(client_id) or secrets.token_urlsafe(32) for client_id in client_ids}


@cache
def _secrets() -> dict[str, str]:
    return json.loads(secrets_file().read_text())


def authenticate(client_id: str, secret: str) -> Client | None:
    """The client whose id and secret these are; None for anything else (unknown id, wrong secret)."""
    client = settings().clients.get(client_id)
    expected = _secrets().get(client_id, "")
    # Compared even for an unknown client, so the answer's timing does not tell which ids exist.
    matches = hmac.compare_digest(secret.encode(), (expected or secrets.token_urlsafe(32)).encode())
    return client if client is not None and expected and matches else None
