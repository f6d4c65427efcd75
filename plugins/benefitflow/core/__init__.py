"""What every part of the platform stands on: its configuration (`config`), the database (`db`), the
audit trail (`audit`), the errors a user is shown (`errors`), dbt (`dbt_runner`), Airflow's users
(`airflow_users`), the inbox and outbox (`file_store`), and the three small languages users write in:
trigger-form values (`parameters`), filters and criteria (`filters`), typed CSV columns (`columns`)."""
