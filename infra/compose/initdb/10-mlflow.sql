-- Prefect uses the default database (POSTGRES_DB=prefect); MLflow gets its own.
CREATE DATABASE mlflow OWNER keel;
