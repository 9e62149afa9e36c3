"""The tiny world of the embedded default: facts, corpus, chats, preferences, evaluation data."""
