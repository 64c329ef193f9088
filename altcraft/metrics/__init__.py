"""Metrics beyond GET /metrics: the Pushgateway push of on-demand workers (push.py) and
the scrape configuration of the distribution's Prometheus (scrape.py)."""
