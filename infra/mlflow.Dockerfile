# MLflow tracking server with what the official image lacks: the Postgres driver and the basic-auth app's
# dependency (the mlflow[auth] extra: Flask-WTF).
FROM ghcr.io/mlflow/mlflow:v3.17.2
RUN pip install --no-cache-dir psycopg2-binary==2.9.10 "mlflow[auth]==3.17.2"
