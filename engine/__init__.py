"""Numeric core of the console: storage, datasets, recipes, model artifacts and the batch runner.

Nothing in this package imports Django; the web side translates database rows into the plain
arrays and file objects used here.
"""
