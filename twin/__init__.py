"""mailtwin: a discrete-event capacity simulator and digital twin of campus mail."""

__version__ = "0.1.0"
