"""The Airflow plugin entry of benefitflow: its pages and endpoints on the api-server (the Upload page in the
navigation and its REST twin, the downloads of an upload's files and of a run's proposal), and the listener
that makes each task process forget the services' secrets."""

from airflow.plugins_manager import AirflowPlugin

from benefitflow.platform import task_secrets
from benefitflow.platform.web import app


class BenefitflowPlugin(AirflowPlugin):
    name = "benefitflow"
    listeners = [task_secrets]
    fastapi_apps = [{"app": app, "url_prefix": "/benefitflow", "name": "benefitflow"}]
    # Airflow's UI shows the page in its navigation, framed; the page itself answers 403 to whoever may start
    # no upload workflow (checkers, managers).
    external_views = [{"name": "Upload", "href": "benefitflow/upload", "url_route": "upload", "destination": "nav"}]
