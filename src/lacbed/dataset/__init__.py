"""lacbed.dataset."""
