"""lacbed.structures."""
