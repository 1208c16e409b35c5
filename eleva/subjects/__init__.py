"""Subjects: a user's own study subjects."""
