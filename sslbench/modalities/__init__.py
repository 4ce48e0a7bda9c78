"""Modalities: one registered :class:`~sslbench.modalities.base.Modality` per kind of data (``image.py``,
``graph.py``; text and audio follow as new files, listed in ``sslbench.plugins.BUILTIN_MODALITY_MODULES``).
Look one up with :func:`sslbench.plugins.get_modality`."""
