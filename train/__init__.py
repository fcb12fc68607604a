"""Training and evaluation: ``segment train`` and ``segment eval``.

Read top to bottom: ``config`` (TrainConfig and the named recipes), ``trainer``
(``main``: builds everything, runs the loop), ``engine`` (``train_step``,
``evaluate``), ``metrics`` (the bincount confusion matrix), ``sampling``
(deterministic, resumable data order), ``checkpointing``, ``distributed``,
``logs``. Importing this package imports nothing heavy.
"""
