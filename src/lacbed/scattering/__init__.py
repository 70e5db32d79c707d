"""lacbed.scattering."""
