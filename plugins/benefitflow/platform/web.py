"""benefitflow's pages and endpoints on Airflow's api-server, under /benefitflow: the Upload page and its REST
twin (`upload_page`), the downloads of an upload's files (`upload_files`) and of a run's proposal
(`proposal_files`)."""

from fastapi import FastAPI

from benefitflow.platform import proposal_files, upload_files, upload_page

app = FastAPI(title="benefitflow", description=__doc__)
app.include_router(upload_page.router)
app.include_router(upload_files.router)
app.include_router(proposal_files.router)
