"""Comparison statistics: classification metrics and the seed bands that say which differences hold."""
