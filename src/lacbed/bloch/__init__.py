"""lacbed.bloch."""
