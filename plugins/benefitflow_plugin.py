"""The Airflow plugin entry of benefitflow: the upload files endpoint on the api-server, and the
listener that makes each task process forget the services' secrets."""

from airflow.plugins_manager import AirflowPlugin

from benefitflow.platform import task_secrets
from benefitflow.platform.upload_files import app


class BenefitflowPlugin(AirflowPlugin):
    name = "benefitflow"
    listeners = [task_secrets]
    fastapi_apps = [{"app": app, "url_prefix": "/benefitflow", "name": "benefitflow upload files"}]
