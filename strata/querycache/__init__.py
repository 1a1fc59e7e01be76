"""The ORM query cache: SELECT results cached with their tags, checked on every use."""
