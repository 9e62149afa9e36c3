"""Stylized preference synthesis: rewriting chosen answers in a style with a generator backend."""
