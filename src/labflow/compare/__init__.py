"""Comparison statistics: classification metrics and the seed bands that say which differences hold."""

# Keys of a comparison's metrics.json that are not variants: what the evaluate stage adds beside them.
NOT_VARIANTS = ("summary", "seed_bands", "lessons")
