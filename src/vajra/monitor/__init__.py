"""The monitoring service: a separate process that reads the engine's shared memory and serves
it over WebSocket and HTTP (`vajra monitor`, docs/monitor.md)."""
