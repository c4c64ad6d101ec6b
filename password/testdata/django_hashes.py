"""Prints, as JSON, Django's own make_password for each hasher useremail
reads, over a few passwords: the vectors of TestDjangoHashes. Run with
Debian's /usr/bin/python3 (python3-django, python3-argon2, python3-bcrypt):

    /usr/bin/python3 django_hashes.py > django_hashes.json

scrypt is Django 4.0's ScryptPasswordHasher, copied because Debian's Django
3.2 predates it.
"""
import base64
import hashlib
import json

import django
from django.conf import settings
from django.contrib.auth.hashers import BasePasswordHasher
from django.utils.crypto import constant_time_compare


class ScryptPasswordHasher(BasePasswordHasher):
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

    def verify(self, password, encoded):
        _, n, salt, r, p, _ = encoded.split("$", 6)
        return constant_time_compare(encoded, self.encode(password, salt, int(n), int(r), int(p)))


HASHERS = ["pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt", "scrypt"]
PASSWORDS = ["correct horse battery staple", "pässwörd ünïcode", "x" * 100]

settings.configure(
    SECRET_KEY="vectors",
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
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
from django.contrib.auth.hashers import check_password, make_password  # noqa: E402

vectors = []
for h in HASHERS:
    for pw in PASSWORDS:
        enc = make_password(pw, hasher=h)
        assert check_password(pw, enc)
        vectors.append({"scheme": h, "password": pw, "encoded": enc})
print(json.dumps(vectors, indent=1, ensure_ascii=False))
