"""The tutorial docs/your-site.md, followed word for word."""
