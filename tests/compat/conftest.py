import sys

import pytest

import harness

harness.clear_proxy_env()

_failed_modules = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        _failed_modules.add(item.module.__name__)


def _start(request, extra_args):
    srv = harness.PalisadeServer(extra_args=extra_args).start()

    def fin():
        if request.module.__name__ in _failed_modules:
            tail = "".join(srv.stderr_text().splitlines(True)[-60:])
            sys.stderr.write("\n--- palisade serve %s stderr (last lines) ---\n%s\n" % (" ".join(extra_args), tail))
        srv.stop()

    request.addfinalizer(fin)
    return srv


@pytest.fixture(scope="module")
def server(request):
    """The module's own palisade server with default options."""
    return _start(request, [])


@pytest.fixture(scope="module")
def quota_server(request):
    """A second server of the module, started with `--rule-quota 5`."""
    return _start(request, ["--rule-quota", "5"])


@pytest.fixture(scope="module")
def dup_ignore_server(request):
    """A third server of the module, started with `--duplicate-rule ignore`."""
    return _start(request, ["--duplicate-rule", "ignore"])
