"""Shared fixtures of the test suite (each fixture module documents its own fixtures)."""

from devnet_fixtures import *  # noqa: F403
from s3_fixtures import *  # noqa: F403
from sensor_fixtures import *  # noqa: F403
