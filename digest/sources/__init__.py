"""Sources of posts: one module per kind, all meeting :class:`digest.sources.base.Source`."""
