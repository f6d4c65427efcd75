"""An installation's registry API secrets: `python -m benefitflow.registry_api.provision FOLDER`.

Makes, where missing, FOLDER/clients.json (each configured client's secret; hand it to the partner) and
FOLDER/key/signing-key.pem (the service's ed25519 key, in a folder of its own: Airflow's workers sign deliveries
with it and are given that folder only), both 0600, and keeps what is there: a second run changes
nothing, a client added to clients.yaml gets its secret. The one-machine stack keeps them in .local/;
docker-compose in the registry-api-secrets volume.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benefitflow.core import file_store
from benefitflow.registry_api import clients, signing


def provision(secrets_file: Path, key_file: Path) -> None:
    existing = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}
    made = clients.new_secrets(existing, list(clients.settings().clients))
    if made != existing:
        file_store.write_secret(secrets_file, json.dumps(made, indent=2) + "\n")
    signing.create_key(key_file)


def main(folder: str) -> None:
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    (root / "key").mkdir(exist_ok=True)
    provision(root / "clients.json", root / "key" / "signing-key.pem")
    print(f"registry API secrets in {root}: clients.json, key/signing-key.pem")


if __name__ == "__main__":
    main(sys.argv[1])
