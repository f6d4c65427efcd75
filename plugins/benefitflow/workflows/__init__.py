"""The one shape every operation follows, declared once and built once.

    intake -> validate -> propose -> approve -> commit -> publish

`declaration` says what a workflow is (a `Workflow` whose parts are the six steps); the
modules named after the steps do them (`intake`, `validate`, `propose`, `approve`, `commit`,
`publish`); `dag` builds the Airflow DAG of any workflow, and `direct` runs the same steps in
one process, for tests and the bench.
"""
