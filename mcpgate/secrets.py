"""A stack's secrets: every credential one stack needs, generated on first use from the store.

What each secret is, how it is made and checked, who consumes it and whether it rotates is written
once, in :mod:`mcpgate.secret_catalogue`; the files are kept by :mod:`mcpgate.secret_store`. This
module answers a stack's questions from both: its values, a signing-key rollover, a rotation, the
values that must never leak and the components' rules over the values generated.

Example::

    store = SecretStore.for_host(Path("secrets"), "gateway.lan")
    secrets = StackSecrets(store, stack)
    secrets.client_secret("claude-ai")      # created once, then read back
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .accepted_values import supplied_value_problem
from .errors import SecretsError
from .model import Stack
from .secret_catalogue import (
    BACKUP_PASSWORD_SECRET,
    CATALOGUE,
    RETIRING_KEY,
    SIGNING_KEY,
    Secret,
    entry_for,
    generate,
    rotatable_by_name,
)
from .secret_crypto import (
    argon2id_hash,
    argon2id_verify,
    key_id_for,
    pbkdf2_sha512_digest,
    pbkdf2_sha512_verify,
    public_jwk,
)
from .secret_store import SecretStore

__all__ = ["ROTATABLE", "Rotatable", "SecretStore", "StackSecrets", "generated_value_problems"]


@dataclass(frozen=True)
class Rotatable:
    name: str
    path: str
    factory: Callable[[], str]
    restarts: str


def _rotatable(name: str, entry: Secret, path: str) -> Rotatable:
    return Rotatable(name, path, entry.generate or (lambda: generate(path)), entry.restarts)


# The secrets ``secrets rotate`` replaces by a fixed name (see the catalogue for why these).
ROTATABLE: dict[str, Rotatable] = {
    name: _rotatable(name, entry, entry.path) for name, entry in rotatable_by_name().items()
}


class StackSecrets:
    """Every credential one stack needs, generated on first use from the store."""

    def __init__(self, store: SecretStore, stack: Stack) -> None:
        self.store = store
        self.stack = stack

    def _generated(self, name: str) -> str:
        """The stored value, made first by its catalogue row's generator if the store has none."""
        return self.store.get_or_create(name, lambda: generate(name))

    def value(self, name: str) -> str | None:
        """Any store file's value: generated first where its row has a generator, else as stored."""
        entry = entry_for(name)
        return self._generated(name) if entry and entry.generate else self.store.get(name)

    # Authelia's own secrets
    def session_secret(self) -> str:
        return self._generated("authelia/session_secret")

    def storage_encryption_key(self) -> str:
        return self._generated("authelia/storage_encryption_key")

    def oidc_hmac_secret(self) -> str:
        return self._generated("authelia/oidc_hmac_secret")

    def reset_password_jwt_secret(self) -> str:
        return self._generated("authelia/reset_password_jwt_secret")

    def oidc_private_key_pem(self) -> str:
        """The key Authelia signs with."""
        return self._generated(SIGNING_KEY)

    def oidc_key_id(self) -> str:
        """The signing key's id: stable for as long as the key is (see :func:`key_id_for`)."""
        return key_id_for(self.oidc_private_key_pem())

    def oidc_retiring_key_pem(self) -> str | None:
        """The key a signing-key rollover retires (``secrets rollover start``): Authelia no longer signs
        with it, but it stays in both JWK Sets, so tokens it signed still pass until ``finish``."""
        pem = self.store.get(RETIRING_KEY)
        if pem is None or key_id_for(pem) == self.oidc_key_id():
            return None  # an interrupted start left a copy of the signing key: nothing is retiring
        return pem

    def oidc_signing_keys(self) -> list[str]:
        """Every key in Authelia's jwks, the one that signs first (Authelia signs an RS256 client's
        tokens with the first RS256 key: validateOIDCAlgKIDDefault in its configuration validator)."""
        retiring = self.oidc_retiring_key_pem()
        return [self.oidc_private_key_pem(), *([retiring] if retiring else [])]

    def oidc_public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set Authelia serves for its keys (same kids, alg and use, the signing key first)."""
        return {"keys": [dict(public_jwk(pem)) for pem in self.oidc_signing_keys()]}

    def rollover_start(self) -> tuple[str, str]:
        """A new signing key; the current one keeps verifying until :meth:`rollover_finish`. (old, new) kid."""
        if self.oidc_retiring_key_pem() is not None:
            raise SecretsError(
                f"a signing-key rollover is already under way (key {key_id_for(self.store.get(RETIRING_KEY) or '')}"
                " is retiring); finish it first (mcpgate secrets rollover INVENTORY finish), then start another"
            )
        old = self.oidc_private_key_pem()
        # The old key is kept first, so an interruption leaves at worst a copy of the signing key.
        self.store.set(RETIRING_KEY, old)
        self.store.set(SIGNING_KEY, generate(SIGNING_KEY))
        return key_id_for(old), self.oidc_key_id()

    def rollover_finish(self) -> str:
        """Drop the retiring key: tokens it signed stop passing the gateway. Its kid."""
        retiring = self.store.get(RETIRING_KEY)
        if retiring is None:
            raise SecretsError(
                "no signing-key rollover is under way (start one: mcpgate secrets rollover INVENTORY start)"
            )
        self.store.delete(RETIRING_KEY)
        return key_id_for(retiring)

    def gateway_session_key(self) -> str:
        """AES-256-GCM key (hex) agentgateway encrypts MCP session ids with."""
        return self._generated("agentgateway/session_key")

    def redis_password(self) -> str:
        return self._generated("redis/password")

    def backup_password(self) -> str:
        """The restic repository's password: the store and the repository together make a restore."""
        return self._generated(BACKUP_PASSWORD_SECRET)

    # OAuth clients
    def client_secret(self, client_id: str) -> str:
        return self._generated(f"clients/{client_id}.secret")

    def _kept_digest(
        self, name: str, secret: str, make: Callable[[str], str], verify: Callable[[str, str], bool]
    ) -> str:
        """A salted digest of ``secret``, kept in the store so rendering is byte-identical run after
        run; made anew only when it no longer matches the secret.

        Verifying a digest is slow by design (argon2id, pbkdf2: ~0.25 s each); a pair once verified
        is remembered (``SecretStore.verified``) so a run that changes nothing does not pay again."""
        digest = self.store.get(name)
        if digest is not None and self.store.verified(name, secret, digest):
            return digest
        if digest is None or not verify(secret, digest):
            digest = make(secret)
            self.store.set(name, digest)
        self.store.remember_verified(name, secret, digest)
        return digest

    def client_secret_digest(self, client_id: str) -> str:
        """The pbkdf2 digest Authelia gets instead of the secret."""
        return self._kept_digest(
            f"clients/{client_id}.pbkdf2", self.client_secret(client_id), pbkdf2_sha512_digest, pbkdf2_sha512_verify
        )

    # Users
    def user_password(self, user: str) -> str:
        return self._generated(f"users/{user}.password")

    def user_password_hash(self, user: str) -> str:
        """The argon2id digest for Authelia's users file."""
        return self._kept_digest(f"users/{user}.argon2id", self.user_password(user), argon2id_hash, argon2id_verify)

    def user_totp_seed(self, user: str) -> str:
        return self._generated(f"users/{user}.totp")

    def user_subject(self, user: str) -> str:
        return self._generated(f"users/{user}.sub")

    # Secrets a person supplies (`mcpgate secrets set`)
    def token(self, name: str) -> str | None:
        return self.store.get(f"tokens/{name}")

    def require_token(self, name: str, host: str, inventory: str = "INVENTORY") -> str:
        value = self.token(name)
        if value is None or not value.strip():
            raise SecretsError(
                f"secret {name!r} for host {host!r} is not in the store ({self.store.root}); set it with:\n"
                f"  mcpgate secrets set {inventory} --host {host} {name}   (reads the value from stdin)"
            )
        problem = supplied_value_problem(self.stack, name, value)
        if problem:
            raise SecretsError(
                f"damaged secret {self.store._path(f'tokens/{name}')} (the token {name}): {problem}; set it again: "
                f"mcpgate secrets set {inventory} --host {host} {name} (reads the value from stdin)"
            )
        return value.strip()

    def optional_token(self, name: str, host: str, inventory: str = "INVENTORY") -> tuple[str | None, str | None]:
        """A token needed only sometimes (the Tailscale key: only to join): ``(value, None)``,
        ``(None, None)`` when the store has none, or ``(None, problem)`` with the store's own words
        when the stored value is damaged, for the caller to report if it needs the value."""
        try:
            if self.token(name) is None:
                return None, None
            return self.require_token(name, host, inventory), None
        except SecretsError as err:
            return None, str(err)

    def values_that_must_not_leak(self) -> list[str]:
        """Every secret value of the stack (all but digests and public data), to look for leaks."""
        values = [
            entry.leaks(value)
            for entry in CATALOGUE
            if entry.leaks is not None
            for name in entry.files(self.stack)
            if (value := self.value(name))
        ]
        return [v.strip() for v in values if len(v.strip()) >= 8]

    def settable_names(self) -> list[str]:
        return self.stack.settable_secrets

    def rotatable(self, name: str) -> Rotatable:
        """What ``secrets rotate NAME`` replaces: one of :data:`ROTATABLE`, a confidential client's
        secret (``client/<id>``: the client must be given the new one), a person's initial password
        (``password/<user>``) or TOTP seed (``totp/<user>``: their authenticator app must scan the new URI)."""
        if name in ROTATABLE:
            return ROTATABLE[name]
        kind, _, who = name.partition("/")
        stack = self.stack
        if kind == "client" and who:
            client = next((c for c in stack.clients if c.id == who), None)
            if client is None:
                known = ", ".join(f"client/{c.id}" for c in stack.clients if not c.public) or "none"
                raise SecretsError(f"the inventory has no client {who!r}; its confidential clients: {known}")
            if client.public:
                raise SecretsError(f"client {who!r} is a public client (PKCE only): it has no secret to rotate")
        elif kind in ("password", "totp") and who and not any(u.name == who for u in stack.users):
            known = ", ".join(f"{kind}/{u.name}" for u in stack.users) or "none"
            values = "passwords" if kind == "password" else "TOTP seeds"
            raise SecretsError(f"the inventory has no user {who!r}; its users' {values}: {known}")
        entry = next((s for s in CATALOGUE if s.rotate == f"{kind}/{{who}}"), None) if who else None
        if entry is None:
            raise SecretsError(
                f"{name!r} cannot be rotated without locking someone out; rotatable: {', '.join(ROTATABLE)}, "
                "client/<client id>, totp/<user>, password/<user> (the signing key: mcpgate secrets rollover)"
            )
        return _rotatable(name, entry, entry.name_for(who))

    def rotate(self, name: str) -> Rotatable:
        item = self.rotatable(name)
        self.store.set(item.path, item.factory())
        return item


def generated_value_problems(secrets: StackSecrets) -> list[str]:
    """Every generated value of a stack checked against the rule of the component that parses it
    (each catalogue row's ``accepted``). Messages name the value, never print a secret."""
    found: list[str] = []
    for entry in CATALOGUE:
        if entry.accepted is None:
            continue
        label, rule = entry.accepted
        for name in entry.files(secrets.stack):
            # The store refuses a damaged value as it reads it; that refusal is this value's problem.
            try:
                problem = rule(secrets._generated(name))
            except SecretsError as err:
                problem = str(err)
            if problem:
                found.append(f"{label.format(who=entry.who(name))}: {problem}")
    return found
