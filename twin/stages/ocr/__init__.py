"""FuzzyOCR twin: image parts, the numpy OCR engine, word matching, the stage.

``images`` finds and decodes image parts, ``engine`` reads their text,
``words`` matches FuzzyOCR's word list, ``hashdb`` remembers known spam
images, ``stage`` is the gateway stage (``FuzzyOcr``) and ``imagespam``
generates image spam and ordinary images for tests and benchmarks.
"""
