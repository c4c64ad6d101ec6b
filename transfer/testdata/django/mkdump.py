"""Makes a Django dump the way a django-allauth site would: a throw-away
Django project on SQLite, users created with Django's own make_password
under each hasher, allauth EmailAddress rows, then
`manage.py dumpdata auth.user account.emailaddress`.

Run with Debian's /usr/bin/python3 (python3-django, python3-django-allauth,
python3-argon2, python3-bcrypt):

    /usr/bin/python3 mkdump.py SPEC.json OUT.json

SPEC.json: {"users": [{"username", "email", "password" (null: unusable),
"hasher", "is_active", "addresses": [{"email", "verified", "primary"}]}],
"allauth": true}. Without "allauth" the dump holds auth.user alone.
"""
import base64
import hashlib
import json
import os
import sys
import tempfile

import django
from django.conf import settings
from django.contrib.auth.hashers import BasePasswordHasher
from django.utils.crypto import constant_time_compare


class ScryptPasswordHasher(BasePasswordHasher):
    """Django 4.0's ScryptPasswordHasher (django/contrib/auth/hashers.py),
    copied because Debian's Django 3.2 predates it."""

    algorithm = "scrypt"
    block_size = 8
    maxmem = 0
    parallelism = 1
    work_factor = 2 ** 14

    def encode(self, password, salt, n=None, r=None, p=None):
        n = n or self.work_factor
        r = r or self.block_size
        p = p or self.parallelism
        hash_ = hashlib.scrypt(password.encode(), salt=salt.encode(), n=n, r=r, p=p,
                               maxmem=self.maxmem, dklen=64)
        hash_ = base64.b64encode(hash_).decode("ascii").strip()
        return "%s$%d$%s$%d$%d$%s" % (self.algorithm, n, salt, r, p, hash_)

    def decode(self, encoded):
        algorithm, work_factor, salt, block_size, parallelism, hash_ = encoded.split("$", 6)
        return {"algorithm": algorithm, "work_factor": int(work_factor), "salt": salt,
                "block_size": int(block_size), "parallelism": int(parallelism), "hash": hash_}

    def verify(self, password, encoded):
        d = self.decode(encoded)
        return constant_time_compare(encoded, self.encode(password, d["salt"], d["work_factor"],
                                                          d["block_size"], d["parallelism"]))

    def safe_summary(self, encoded):
        return {}


def main(spec_path, out_path):
    with open(spec_path) as f:
        spec = json.load(f)
    tmp = tempfile.mkdtemp()
    settings.configure(
        SECRET_KEY="fixture",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sites",
                        "allauth", "allauth.account"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(tmp, "db.sqlite3")}},
        SITE_ID=1,
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        PASSWORD_HASHERS=[
            "django.contrib.auth.hashers.PBKDF2PasswordHasher",
            "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
            "django.contrib.auth.hashers.Argon2PasswordHasher",
            "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
            "django.contrib.auth.hashers.BCryptPasswordHasher",
            "__main__.ScryptPasswordHasher",
        ],
    )
    django.setup()
    from django.contrib.auth.hashers import check_password, make_password
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from allauth.account.models import EmailAddress

    call_command("migrate", verbosity=0)
    for u in spec["users"]:
        user = User(username=u["username"], email=u.get("email", ""), is_active=u.get("is_active", True))
        if u.get("password") is None:
            user.set_unusable_password()
        else:
            user.password = make_password(u["password"], hasher=u.get("hasher", "default"))
            assert check_password(u["password"], user.password)
        user.save()
        for a in u.get("addresses", []):
            EmailAddress.objects.create(user=user, email=a["email"], verified=a.get("verified", False),
                                        primary=a.get("primary", False))
    models = ["auth.user"] + (["account.emailaddress"] if spec.get("allauth", True) else [])
    call_command("dumpdata", *models, indent=1, output=out_path, verbosity=0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
