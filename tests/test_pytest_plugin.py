import pytest

pytestmark = pytest.mark.slow  # property and integration tests: `pytest -m 'not slow'` skips them


def test_plugin_registers_profiles_and_the_report_option(pytester):
    pytester.makepyfile(
        """
        from hypothesis import settings

        def test_profiles():
            for name in ("flowlaws-dev", "flowlaws-ci", "flowlaws-thorough"):
                settings.get_profile(name)
            ci, thorough = settings.get_profile("flowlaws-ci"), settings.get_profile("flowlaws-thorough")
            assert thorough.max_examples >= 10 * ci.max_examples
            assert ci.derandomize and ci.deadline is None
        """
    )
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--flowlaws-report-dir*"])
    assert pytester.runpytest().ret == 0


@pytest.mark.parametrize("ci", [None, "true"])
def test_a_users_own_hypothesis_profile_survives_the_plugin_with_and_without_ci(pytester, monkeypatch, ci):
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(
        """
        from hypothesis import settings
        settings.register_profile("mine", max_examples=200, deadline=500)
        settings.load_profile("mine")
        """
    )
    pytester.makepyfile(
        """
        from hypothesis import given, settings, strategies as st

        calls = []

        @given(st.integers())
        def test_count(x):
            calls.append(x)

        def test_profile_is_the_users():
            assert settings().max_examples == 200 and settings().deadline.total_seconds() == 0.5
        """
    )
    result = pytester.runpytest_subprocess()  # the plugin loads by its entry point
    result.assert_outcomes(passed=2)


def test_opting_in_to_the_flowlaws_ci_profile_works(pytester):
    pytester.makepyfile(
        """
        from hypothesis import settings

        def test_active():
            assert settings().derandomize and settings().max_examples == 200
        """
    )
    assert pytester.runpytest_subprocess("--hypothesis-profile", "flowlaws-ci").ret == 0


def test_assert_conserved_renders_counterexamples_in_the_summary(pytester, tmp_path):
    pytester.makepyfile(
        """
        from flowlaws.testing import assert_conserved

        def test_relu_gd_is_fine():
            assert_conserved("mlp:2-3-1:relu", optimizer="gd:lr=0.05", max_examples=10)

        def test_momentum_breaks():
            assert_conserved("mlp:2-3-1:relu", optimizer="momentum:lr=0.05,beta=0.9", max_examples=30)
        """
    )
    result = pytester.runpytest_subprocess(f"--flowlaws-report-dir={tmp_path}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*flowlaws counterexamples*", "found by *::test_momentum_breaks",
                                 "*flowlaws replay*"])
    assert result.stdout.str().count("flowlaws counterexample ") <= 1  # the panel is shown once
    (report,) = tmp_path.glob("*.json")
    assert report.name.startswith("test_assert_conserved_renders_counterexamples_in_the_summary.py__"
                                  "test_momentum_breaks-mlp_2-")  # named after the test that found it
    from flowlaws.cli import main

    assert main(["replay", str(report)]) == 1  # the report replays, and still reproduces


def test_counterexamples_found_on_xdist_workers_reach_the_summary(pytester, tmp_path):
    pytest.importorskip("xdist")
    pytester.makepyfile(
        """
        from flowlaws.testing import assert_conserved

        def test_relu_gd_is_fine():
            assert_conserved("mlp:2-3-1:relu", optimizer="gd:lr=0.05", max_examples=10)

        def test_momentum_breaks():
            assert_conserved("mlp:2-3-1:relu", optimizer="momentum:lr=0.05,beta=0.9", max_examples=30)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", f"--flowlaws-report-dir={tmp_path}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*flowlaws counterexamples*", "found by *::test_momentum_breaks",
                                 "*flowlaws replay*"])
    (report,) = tmp_path.glob("*.json")
    from flowlaws.cli import main

    assert main(["replay", str(report)]) == 1


def test_a_bad_report_dir_does_not_crash_the_session(pytester, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    pytester.makepyfile(
        """
        from flowlaws.testing import assert_conserved

        def test_momentum_breaks():
            assert_conserved("mlp:2-3-1:relu", optimizer="momentum:lr=0.05,beta=0.9", max_examples=30)
        """
    )
    result = pytester.runpytest_subprocess(f"--flowlaws-report-dir={blocker}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*flowlaws counterexamples*", "*cannot write reports to*"])
