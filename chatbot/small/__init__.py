"""The small tier: MiniLM sentence embeddings plus a linear classifier over knowledge-base intents."""
