"""benefitflow's pages and endpoints on Airflow's api-server, under /benefitflow: the Upload page and its REST
twin (`upload_page`), and the downloads of an upload's files (`upload_files`)."""

from fastapi import FastAPI

from benefitflow.platform import upload_files, upload_page

app = FastAPI(title="benefitflow", description=__doc__)
app.include_router(upload_page.router)
app.include_router(upload_files.router)
