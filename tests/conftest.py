import pytest

import harness.plugins


def pytest_configure(config):
    # Installed third-party plugins must never leak into the project's own tests.
    harness.plugins._testing = True


@pytest.fixture
def tmp_run_dir(tmp_path):
    return tmp_path / "run"
