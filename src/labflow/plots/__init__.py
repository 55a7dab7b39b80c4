"""Figures shared by the labs (matplotlib, headless)."""
