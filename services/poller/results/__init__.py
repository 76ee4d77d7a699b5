"""Where results go and how they are read back: result stores by URL, the PostgreSQL sink,
`/executions/{id}/result` and its CLI."""
