"""Run records and everything ``compare`` makes of them.

Imports go one way, each module only from those before it::

    records <- stats <- frame <- table <- render / reference / plots / gate <- compare

``records`` (the schema, atomic I/O) and ``stats`` (the 95% t-interval) import neither pandas nor
each other, so the training side (runner, protocols) pays nothing for the comparison side.
"""
