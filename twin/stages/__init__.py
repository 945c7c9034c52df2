"""The real mail stages: greylisting, SMTP, delivery, filtering, access.

Stage modules know nothing of SimPy or the hardware model: they decide for real
and report the work they did (``twin.stages.work.Work``).
"""
