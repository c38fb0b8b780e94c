"""Batch insertion of the compressed cover tree (PCCT scheme)."""
