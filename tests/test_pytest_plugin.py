"""The pytest plugin hwloop ships (hwloop.pytest_plugin), run in throw-away pytest sessions.

Needs pytest's ``pytester`` plugin (``pytest_plugins = ["pytester"]`` in
tests/conftest.py, or ``-p pytester``); without it these tests fail.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

PLUGIN = "hwloop.pytest_plugin"


def _plugin_args() -> list[str]:
    """``-p hwloop.pytest_plugin`` unless the installed ``pytest11`` entry point loads it already
    (loading the same module under two names is an error in pluggy)."""
    if any(ep.value == PLUGIN for ep in entry_points(group="pytest11")):
        return []
    return ["-p", PLUGIN]


@pytest.fixture(scope="module", autouse=True)
def _loaded_outside_pytester() -> None:
    """pytester's in-process runs forget every module they imported, and a C extension (numpy.fft,
    scipy's) cannot be loaded twice in one process: open the simulators the runs use here first,
    so this file passes alone as well as after any other."""
    import hwloop

    for uri in ("sim", "sim:saleh_iq?noise=0", "sim:mimo3", "sim:cubic", "sim:tanh?seed=3"):
        hwloop.open_device(uri).close()


@pytest.fixture
def run(request: pytest.FixtureRequest):
    """pytester's in-process pytest, with the plugin loaded (tests/conftest.py loads pytester)."""
    if not request.config.pluginmanager.hasplugin("pytester"):
        pytest.fail("needs pytest's pytester plugin: pytest_plugins = ['pytester'] in tests/conftest.py")
    pytester = request.getfixturevalue("pytester")

    def go(*args: str) -> pytest.RunResult:
        # the inner sessions' tests build on each other in file order: pytest-randomly stays out
        no = ["-p", "no:cacheprovider", "-p", "no:randomly"]
        return pytester.runpytest("--strict-markers", *no, *_plugin_args(), *args)

    go.pytester = pytester  # type: ignore[attr-defined]
    return go


def test_default_device_is_the_default_simulator_and_is_closed(run) -> None:
    run.pytester.makepyfile(
        """
        import numpy as np
        import pytest
        from hwloop.errors import DeviceError

        seen = []

        def test_open(hwloop_device):
            seen.append(hwloop_device)
            assert hwloop_device.info.name == "rapp"
            assert hwloop_device.query(np.zeros((3, 1), np.float32)).shape == (3, 1)

        def test_closed_afterwards():
            with pytest.raises(DeviceError, match="closed"):
                seen[0].query(np.zeros((1, 1), np.float32))
        """
    )
    run().assert_outcomes(passed=2)


def test_marker_chooses_the_simulator(run) -> None:
    run.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.hwloop_device("sim:saleh_iq?noise=0")
        def test_iq(hwloop_device):
            assert (hwloop_device.info.in_dim, hwloop_device.info.out_dim) == (2, 2)

        @pytest.mark.hwloop_device(uri="sim:mimo3")
        def test_keyword(hwloop_device):
            assert hwloop_device.info.name == "mimo3"

        def test_unmarked(hwloop_device):
            assert hwloop_device.info.name == "rapp"
        """
    )
    run().assert_outcomes(passed=3)


def test_marker_on_a_class_applies_to_its_tests(run) -> None:
    run.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.hwloop_device("sim:cubic")
        class TestCubic:
            def test_one(self, hwloop_device):
                assert hwloop_device.info.name == "cubic"
        """
    )
    run().assert_outcomes(passed=1)


def test_ini_option_sets_the_default(run) -> None:
    run.pytester.makeini("[pytest]\nhwloop_default_device = sim:tanh?seed=3\n")
    run.pytester.makepyfile(
        """
        def test_tanh(hwloop_device):
            assert hwloop_device.info.name == "tanh"
        """
    )
    run().assert_outcomes(passed=1)


def test_device_url_wins_over_marker_and_ini(run) -> None:
    run.pytester.makeini("[pytest]\nhwloop_default_device = sim:tanh\n")
    run.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.hwloop_device("sim:saleh_iq")
        def test_marked(hwloop_device):
            assert hwloop_device.info.name == "cubic"

        def test_plain(hwloop_device):
            assert hwloop_device.info.name == "cubic"
        """
    )
    result = run("--device-url", "sim:cubic")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["hwloop: device under test sim:cubic"])


def test_bad_device_url_fails_the_test_with_the_hwloop_error(run) -> None:
    run.pytester.makepyfile(
        """
        def test_it(hwloop_device):
            pass
        """
    )
    result = run("--device-url", "nosuchscheme:x")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*UnknownSchemeError*nosuchscheme*"])


def test_empty_marker_is_a_usage_error(run) -> None:
    run.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.hwloop_device()
        def test_it(hwloop_device):
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*hwloop_device needs one URI string*"])


def test_sim_device_factory_builds_and_closes(run) -> None:
    run.pytester.makepyfile(
        """
        import numpy as np
        import pytest
        from hwloop.errors import DeviceError, UnknownSchemeError

        made = []

        def test_make(sim_device):
            a = sim_device("saleh_iq", noise=0.0, seed=1)
            b = sim_device()
            made.extend([a, b])
            assert (a.info.name, a.info.in_dim, b.info.name) == ("saleh_iq", 2, "rapp")
            assert a.query(np.zeros((2, 2), np.float32)).shape == (2, 2)
            with pytest.raises(UnknownSchemeError):
                sim_device("nosuchsim")

        def test_all_closed():
            for dev in made:
                with pytest.raises(DeviceError, match="closed"):
                    dev.query(np.zeros((1, dev.info.in_dim), np.float32))
        """
    )
    run().assert_outcomes(passed=2)


def test_option_and_ini_are_in_the_help(run) -> None:
    result = run("--help")
    result.stdout.fnmatch_lines(["*--device-url=URL*", "*hwloop_default_device*"])


def test_conftest_reading_the_plugins_option_skips_hardware_tests(run) -> None:
    """The proposed tests/conftest.py: the plugin owns --device-url, the conftest only reads it."""
    run.pytester.makeconftest(
        """
        import pytest

        def pytest_configure(config):
            config.addinivalue_line("markers", "hardware: needs a real board")

        def pytest_collection_modifyitems(config, items):
            if config.getoption("--device-url"):
                return
            skip = pytest.mark.skip(reason="needs a real board: run with --device-url URL")
            for item in items:
                if "hardware" in item.keywords:
                    item.add_marker(skip)

        @pytest.fixture
        def device_url(request):
            return request.config.getoption("--device-url")
        """
    )
    run.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.hardware
        def test_board(device_url, hwloop_device):
            assert device_url == "sim:tanh" and hwloop_device.info.name == "tanh"
        """
    )
    run().assert_outcomes(skipped=1)
    run("--device-url", "sim:tanh").assert_outcomes(passed=1)
