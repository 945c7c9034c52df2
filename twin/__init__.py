"""mailtwin: a discrete-event capacity simulator and digital twin of a campus mail system."""

__version__ = "0.1.0"
