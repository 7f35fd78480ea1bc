"""Shared pytest configuration: hypothesis profiles.

``ci`` (used when the environment variable CI is set, and by default): derandomized,
no deadline, small example counts so the suite finishes in minutes on 2 cores.
``dev``: random, more examples (``HYPOTHESIS_PROFILE=dev``).
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
