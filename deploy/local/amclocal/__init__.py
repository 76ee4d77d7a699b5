"""Local infrastructure for development and tests: a Kafka-protocol broker, PostgreSQL, and the
AMC/LWA simulator. Never imported by the product itself."""
