"""Adapters for the platforms where courses run: Gradescope, PrairieLearn, Canvas, Moodle."""
