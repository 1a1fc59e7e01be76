"""django-guardian's test settings (``guardian/testapp/testsettings.py``), with Strata."""

from guardian.testapp.testsettings import *  # noqa: F403
from strata_suite import configure

configure(globals())

# Its settings keep Django's default hasher, whose 1,000,000 PBKDF2 rounds per user made
# of each test a second of hashing; Wagtail's test settings do the same.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
