"""Model shapes that real projects have and the demo does not (see ``models.py``)."""
