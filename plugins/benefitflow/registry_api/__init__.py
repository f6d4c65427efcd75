"""The registry API: partner systems query the social registry through the DCI Social Registry API 1.0.0.

A service of its own (`app.py`, uvicorn on 127.0.0.1), apart from Airflow's users and api-server, reading the
registry's current state through a database login of its own (`benefitflow_registry_api`: SELECT on the
registry's state, INSERT into the audit trail, nothing else). Clients, their scopes and the identifier types
are configuration (`clients.yaml`); their secrets and the service's signing key are the installation's.
"""
