"""Shared fixtures and tiers of the test suite, as plugins: one instance of each session fixture
(one devnet, one PostgreSQL cluster) for the whole run, however many modules use it. Each module
documents its own fixtures; `tiers` derives the markers devnet, postgres, fhe and fast."""

pytest_plugins = [
    "tiers",
    "devnet_fixtures",
    "postgres_fixtures",
    "s3_fixtures",
    "sensor_fixtures",
    "fhe_fixtures",
    "pytester",
]
