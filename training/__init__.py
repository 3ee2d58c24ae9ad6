"""Headless training and data tools for InstantRetouch (installed as ``retouch_training``).

Imports ``retouch_core``; ``retouch_core`` never imports this package.
"""
