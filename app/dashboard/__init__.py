"""The browser dashboard: static pages served beside the API, talking to it like any client."""
