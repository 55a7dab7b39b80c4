"""The only place that talks to MLflow or writes DVC metrics/plots files."""
