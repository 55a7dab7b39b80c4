"""Team mode: a shared tracking server (MLflow on PostgreSQL)."""
