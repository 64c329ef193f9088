"""Upgrading an installed platform: version order and required stops (stops.py), and the
run itself (runner.py: preflight, backup, migrations, restarts group by group)."""
