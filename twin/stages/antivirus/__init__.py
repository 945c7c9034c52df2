"""ClamAV twin: signature files, the matcher, MIME and zip unpacking, the scan stage.

``signatures`` reads .hdb/.hsb/.ndb files, ``matcher`` compiles them, ``mime``
takes mail and zip archives apart, ``stage`` is the gateway stage (``Scanner``)
and ``commands`` the clamscan-like file scanner.
"""
