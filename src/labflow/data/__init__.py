"""Data sets for the labs: offline sources for quick runs, checked downloads for full runs.

Stages call :func:`fetch` once per data set (a DVC ``download_<name>`` stage);
labs read the result with :func:`load_images` or :func:`load_table`, which
verify the manifest first so bad data fails before training starts.
"""

from labflow.data.datasets import DATASETS, ImageData, fetch, known_datasets, load_detection, load_images, load_table
from labflow.data.download import ChecksumError, DataError, DownloadError
from labflow.data.manifest import manifest_hash, verify_manifest

__all__ = [
    "DATASETS", "ChecksumError", "DataError", "DownloadError", "ImageData", "fetch",
    "known_datasets", "load_detection", "load_images", "load_table", "manifest_hash", "verify_manifest",
]
