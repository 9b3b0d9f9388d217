"""Announcements: recordings uploaded or made from text on the page, and the standard messages."""
