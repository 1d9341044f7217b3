"""Root test configuration: makes ``tests.support`` importable, has every subprocess run the
beamlink these tests import, loads the shared fixtures, and sets a hypothesis profile that
tolerates slow, loaded machines (no deadlines, no slowness checks)."""

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

import beamlink

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The beamlink under test is the one imported here (the checkout's src/ by pyproject's pythonpath,
# or the installed one the Python matrix tests); `beamlink start` and the other Python
# subprocesses the tests spawn inherit the environment, so they get the same one rather than
# whichever the interpreter has installed.
_UNDER_TEST = str(Path(beamlink.__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_UNDER_TEST, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)

pytest_plugins = ["tests.support.fixtures"]

settings.register_profile(
    "beamlink",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("beamlink")
