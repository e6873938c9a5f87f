"""One exception type for every data problem, so that a user sees one clear error.

Messages name the file (or key, or shape), say what was expected and what to do next.
"""

from __future__ import annotations


class DataError(RuntimeError):
    """A raw input, download or artefact is missing, corrupt or not in the expected layout."""
