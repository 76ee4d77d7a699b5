"""PostgreSQL access: pool creation and the versioned migration runner."""

from shared.db.migrate import MigrationError, apply_migrations
from shared.db.pool import create_pool

__all__ = ["MigrationError", "apply_migrations", "create_pool"]
