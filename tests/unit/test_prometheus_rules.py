"""The shipped alert rules (roles/prometheus/files/altcraft-rules.yml) are valid and do what
their unit tests (altcraft-rules.test.yml beside them) say: each alert fires for its condition
and not otherwise. promtool is Debian's (tests/harness/servers.sh installs it); without it
these tests fail."""

from __future__ import annotations

import yaml

from tests.lib.prometheus import RULES, RULES_TEST, promtool


def test_rules_check():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_unit_tests_pass():
    result = promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test():
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    tested = {case["alertname"] for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}
    assert alerts == tested
    wanted = {"AltcraftProcessDown", "AltcraftReadinessFailing", "RabbitMQQueueGrowing", "DiskOver80Percent",
              "BounceRateHigh", "ClickHouseInsertErrors", "ClickHouseReplicaLag",
              "PostgresStandbyDisconnected", "PostgresReplicaLagging"}
    assert wanted <= alerts


def test_a_broken_rule_fails_its_unit_test(tmp_path):
    """The unit tests can fail: the process-down rule made to look at the wrong value."""
    broken = RULES.read_text().replace('up{job=~"altcraft_.+"} == 0', 'up{job=~"altcraft_.+"} == 2')
    assert broken != RULES.read_text()
    (tmp_path / RULES.name).write_text(broken)
    (tmp_path / RULES_TEST.name).write_text(RULES_TEST.read_text())
    result = promtool("test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "AltcraftProcessDown" in result.stdout + result.stderr
