-- The Prefect database is created by POSTGRES_DB; MLflow gets its own.
CREATE DATABASE mlflow;
-- The user store of MLflow's basic-auth app on Kubernetes (infra/k8s/mlflow.yaml); compose keeps it on a volume.
CREATE DATABASE mlflow_auth;
-- Feast's SQL registry of the feature store (the stack's feature views and services, its materialisations).
CREATE DATABASE feast;
