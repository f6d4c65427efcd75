"""Validating the registry API's answers against its OpenAPI document, and against the DCI's own files.

The service's document (`registry_api/openapi.yaml`) is checked always. Only answers are checked against the DCI
files: their request schemas hold a $ref that points nowhere (the predicate's attribute_value, into
`/registry/search`'s oneOf/1/properties/value/allOf/1), so no validator can load them. The DCI 1.0.0 files
(social_api_v1.0.0.yaml, jwks_core_api_v1.0.0.yaml, authz_core_api_v1.0.0.yaml from spdci/api-standards
release/yaml) are not in this repository: where BENEFITFLOW_DCI_SPEC_DIR names a folder holding them, every
answer is validated against them too.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012

from benefitflow.registry_api import app as registry_api_app

OURS = {"sync_search_response": "SyncSearchResponse", "on_search_callback": "SyncSearchResponse", "jwks": "JWKS",
        "token": "TokenResponse", "http_error": "HttpError", "ack": "Ack", "txn_status_response": "TxnStatusEnvelope",
        "on_status_callback": "TxnStatusEnvelope", "notify": "NotifyEnvelope"}
# Where each answer's schema sits in the DCI files (a JSON pointer into the OpenAPI document).
DCI = {
    "sync_search_response": ("social_api_v1.0.0.yaml",
                             "/paths/~1registry~1sync~1search/post/responses/default/content/application~1json/schema"),
    "on_search_callback": ("social_api_v1.0.0.yaml",
                           "/paths/~1registry~1on-search/post/requestBody/content/application~1json/schema"),
    "txn_status_response": ("social_api_v1.0.0.yaml", "/paths/~1registry~1sync~1txn~1status/post/responses/default"
                                                      "/content/application~1json/schema"),
    "on_status_callback": ("social_api_v1.0.0.yaml",
                           "/paths/~1registry~1txn~1on-status/post/requestBody/content/application~1json/schema"),
    "ack": ("social_api_v1.0.0.yaml", "/components/responses/Response/content/application~1json/schema"),
    "jwks": ("jwks_core_api_v1.0.0.yaml", "/components/schemas/JWKSResponse"),
    "token": ("authz_core_api_v1.0.0.yaml", "/components/schemas/OAuth2ClientTokenResponse"),
    "http_error": ("social_api_v1.0.0.yaml",
                   "/components/responses/HttpErrorResponse/content/application~1json/schema"),
}


@cache
def _document(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _validate(body: Any, document: dict[str, Any], pointer: str, specification: Any) -> None:
    uri = "urn:document"
    registry = Registry().with_resource(uri, Resource(contents=document, specification=specification))
    schema = {"$ref": f"{uri}#{pointer}"}
    validator_class = jsonschema.Draft4Validator if specification is DRAFT4 else jsonschema.Draft202012Validator
    validator_class(schema, registry=registry, format_checker=jsonschema.FormatChecker()).validate(body)


def dci_spec_dir() -> Path | None:
    value = os.environ.get("BENEFITFLOW_DCI_SPEC_DIR")
    return Path(value) if value else None


def assert_conforms(body: Any, answer: str) -> None:
    _validate(body, registry_api_app.openapi_document(), f"/components/schemas/{OURS[answer]}", DRAFT202012)
    if (folder := dci_spec_dir()) and answer in DCI:  # notify and subscribe are not in the 1.0.0 release file
        file_name, pointer = DCI[answer]
        _validate(body, _document(folder / file_name), pointer, DRAFT4)
