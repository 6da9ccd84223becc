"""`wren serve`: the engine behind an OpenAI-compatible HTTP API (app), its wire format (protocol) and the
assistant modes as endpoints (modes)."""
