"""Static files of the live console page."""
