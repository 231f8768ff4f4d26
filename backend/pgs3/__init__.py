"""The namespace in PostgreSQL, the contents in S3: several `nfsd serve` frontends, one tree.

See docs/scale-out.md for the picture. Modules: `schema` (the tables), `format` (`nfsd
format`), `db` (connections, timeouts, outages), `objects` (the S3 API), `cache` (a bounded
block cache of immutable contents), `staging` (a file under construction, spooled locally),
`namespace`, `content`, `frontends`, `locks` (the mixins and helpers of `PgS3Backend`, in
`backend`), `inspect` (`nfsd inspect --meta`).
"""

from .backend import PgS3Backend
from .format import NotEmpty, format_namespace

__all__ = ["NotEmpty", "PgS3Backend", "format_namespace"]
