-- Which operation an upload was handed in for (its workflow), so that its original and error report
-- go only to those entitled: the upload's maker, the checker group of that operation, DataEngineer and
-- Admin. Uploads from before this migration have none; their DAG id is their operation.
-- Runs as benefitflow_owner.
ALTER TABLE intake.uploads ADD COLUMN operation text;
COMMENT ON COLUMN intake.uploads.operation IS
    'The operation (approval_groups.yaml key) the upload was handed in for; NULL before migration 019.';
