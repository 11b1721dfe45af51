import sys
from pathlib import Path

# The package is tested from the checkout: unit tests import it from here, subprocess tests
# get the same folder on PYTHONPATH (tests/support/fake.py). Packaging tests install the wheel.
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# No test is skipped silently: a skip (or an xfail) fails the whole run unless the person
# running it says so explicitly. Missing prerequisites should fail in the test itself.
_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    import os

    if _skipped and os.environ.get("SWANLAB_AUTOPATCH_ALLOW_SKIPS") != "1":
        print(f"\n{len(_skipped)} test(s) skipped; skips count as failures here:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = 1
