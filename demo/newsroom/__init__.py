"""The newsroom app: articles, authors, tags and readers' comments."""
