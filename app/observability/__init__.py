"""What operators watch: Prometheus metrics, structured logs, liveness and readiness."""
