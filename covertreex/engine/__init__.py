"""The traversal engine: frontier expansion, blocked walks and their thread pool, the
pointwise layouts, and the compilation of the traversal templates for each metric."""
