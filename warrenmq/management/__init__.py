"""The management HTTP API (RabbitMQ-compatible), Prometheus metrics and a small web UI.

Runs in the broker's event loop and sees the broker only through warrenmq.admin.Admin.
"""
