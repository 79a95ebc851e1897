def test_plugin_registers_profiles_and_the_report_option(pytester):
    pytester.makepyfile(
        """
        from hypothesis import settings

        def test_profiles():
            for name in ("dev", "ci", "thorough"):
                settings.get_profile(name)
            assert settings.get_profile("thorough").max_examples >= 10 * settings.get_profile("ci").max_examples
            assert settings.get_profile("ci").derandomize and settings.get_profile("ci").deadline is None
        """
    )
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--flowlaws-report-dir*"])
    assert pytester.runpytest().ret == 0


def test_ci_profile_overrides_hypothesis_builtin_one(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(
        """
        from hypothesis import settings

        def test_active():
            assert settings().derandomize and settings().max_examples == 25
        """
    )
    assert pytester.runpytest_subprocess().ret == 0


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
    result.stdout.fnmatch_lines(["*flowlaws counterexamples*", "*flowlaws replay*"])
    assert list(tmp_path.glob("*.json"))
