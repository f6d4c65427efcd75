"""The Airflow plugin entry of benefitflow: the upload files endpoint on the api-server."""

from airflow.plugins_manager import AirflowPlugin

from benefitflow.upload_files import app


class BenefitflowPlugin(AirflowPlugin):
    name = "benefitflow"
    fastapi_apps = [{"app": app, "url_prefix": "/benefitflow", "name": "benefitflow upload files"}]
