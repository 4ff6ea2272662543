"""Tests of the SQL stores (SQLite, SQLAlchemy on SQLite and PostgreSQL)."""
