"""Root test configuration: makes ``tests.support`` importable, loads the shared fixtures, and
sets a hypothesis profile that tolerates slow, loaded machines (no deadlines, no slowness checks)."""

import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = ["tests.support.fixtures"]

settings.register_profile(
    "beamlink",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("beamlink")
