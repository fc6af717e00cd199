"""vergeet package."""
