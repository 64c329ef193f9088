"""ansible-lint (production profile, with the repository's .ansible-lint and .yamllint)
reports nothing on roles/ and playbooks/."""

from __future__ import annotations

import subprocess

from tests.lib import ROOT


def test_ansible_lint_reports_nothing(dist_env):
    result = subprocess.run(
        [f"{dist_env['PATH'].split(':')[0]}/ansible-lint", "--nocolor", "roles/", "playbooks/"],
        cwd=ROOT, env=dist_env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failure(s), 0 warning(s)" in result.stdout + result.stderr
