"""Exact k-nearest-neighbour queries over a fitted tree."""
