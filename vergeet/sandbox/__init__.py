"""vergeet/sandbox package."""
