"""labflow: a deep-learning lab course as one reproducible DVC + MLflow pipeline."""

__version__ = "0.1.0"
