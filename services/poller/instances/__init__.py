"""AMC instances: the registry (SQL), the directory the loops resolve an instance through, and the
`/instances` API and CLI."""
