"""Icons, desktop file, themes and prompt templates, shipped as package data."""
