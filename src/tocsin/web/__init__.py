"""The browser client: pages, shared script and styles, the map."""
