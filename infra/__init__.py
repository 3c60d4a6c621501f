"""Infrastructure: the project home, the local server stack (``infra.stack``), and the Docker
and Postgres files that docker-compose.yml builds from."""
