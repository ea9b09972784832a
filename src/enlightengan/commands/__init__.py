"""Sub-commands of the ``enlightengan`` CLI (see :mod:`enlightengan.cli`)."""
