"""Libraries of cubic crystal structures: offline sources, de-duplication and augmentation."""

from lacbed.structures.entry import Entry, LoadResult
from lacbed.structures.sources import (
    ATTRIBUTIONS,
    SOURCE_NAMES,
    SourceError,
    dedupe,
    load_source,
    load_sources,
    parse_source,
)

__all__ = [
    "ATTRIBUTIONS",
    "SOURCE_NAMES",
    "Entry",
    "LoadResult",
    "SourceError",
    "dedupe",
    "load_source",
    "load_sources",
    "parse_source",
]
