"""Every secret mcpgate keeps, one row each: the one place a secret is described.

A row says where the secret lives in the store, which generator makes it (or that a person supplies
it, or that it is derived from another), what a stored value must look like, what consumes it,
whether ``mcpgate secrets rotate`` may replace it and what the next deploy then restarts, and how a
person repairs a damaged one. The store (:mod:`mcpgate.secret_store`) checks what it reads against
the row; :class:`mcpgate.secrets.StackSecrets` generates, rotates, checks the components' rules
and lists the values that must not leak from the same rows.

Example::

    entry_for("redis/password").restarts     # "redis, authelia"
    entry_for("users/alice.totp").who("users/alice.totp")   # "alice"
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .accepted_values import (
    AUTHELIA_STORAGE_KEY_MIN,
    alnum_problem,
    argon2id_digest_problem,
    authelia_key_id_problem,
    canonical_uuid_problem,
    gateway_session_key_problem,
    hex_key_problem,
    pbkdf2_sha512_digest_problem,
    plain_token_problem,
    rsa_private_key_problem,
    subject_problem,
    supplied_secret_problem,
    totp_seed_form_problem,
    totp_seed_problem,
)
from .secret_crypto import (
    REDIS_PASSWORD_CHARS,
    SECRET_CHARS,
    TOTP_SEED_CHARS,
    USER_PASSWORD_CHARS,
    generate_hex_key,
    generate_rsa_pem,
    generate_subject,
    generate_totp_seed,
    key_id_for,
    random_string,
)

if TYPE_CHECKING:
    from .model import Stack

Rule = Callable[[str], "str | None"]

SIGNING_KEY = "authelia/oidc_jwks_rs256.pem"
RETIRING_KEY = "authelia/oidc_jwks_rs256.retiring.pem"  # during a rollover: verifies, never signs
BACKUP_PASSWORD_SECRET = "backup/restic-password"


def _whole(value: str) -> str:
    return value


def _a_key_line(pem: str) -> str:
    return pem.splitlines()[1]  # a line of the private key: enough to find it anywhere


@dataclass(frozen=True, kw_only=True)
class Secret:
    """One secret, or one per client, user or token where ``path`` names ``{who}``."""

    path: str  # its file in the store; "{who}" stands for the client, user or token it belongs to
    what: str  # in words, for messages; may name {who}
    consumers: str  # what reads it
    generate: Callable[[], str] | None  # its one generator; None: a person supplies it, or another makes it
    form: Rule  # what a stored value must look like (the store refuses any other)
    rotate: str | None = None  # its name for `mcpgate secrets rotate` ("client/{who}"); None: not safe
    restarts: str = ""  # what the deploy after a rotation restarts
    repair: str = ""  # how a person repairs a damaged value; may name {inventory}, {host}, {who}, {path}
    # The rule of the component that parses it, checked before a deploy: (label for messages, rule).
    accepted: tuple[str, Rule] | None = None
    # What of the value to look for in logs and files that must not hold it; None: no secret (a digest).
    leaks: Callable[[str], str] | None = _whole
    # The store files of this row a stack holds (every value a deploy or a leak check reads).
    in_stack: Callable[[Stack], list[str]] | None = None

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.path).replace(re.escape("{who}"), r"(?P<who>[^/]+)"))

    def who(self, name: str) -> str:
        m = self.pattern.fullmatch(name)
        return m.group("who") if m and "who" in m.groupdict() else ""

    def name_for(self, who: str) -> str:
        return self.path.format(who=who)

    def files(self, stack: Stack) -> list[str]:
        return self.in_stack(stack) if self.in_stack else [self.path]

    def repair_for(self, inventory: str, host: str, name: str, path: object) -> str:
        text = self.repair or _rotate_repair(self)
        return text.format(inventory=inventory, host=host, who=self.who(name), path=path)


_BACKUP = "restore it from your backup of the store"
_SHOW = "mcpgate secrets show {inventory} --host {host}"


def _rotate_repair(secret: Secret) -> str:
    return (
        f"rotating it is safe: mcpgate secrets rotate {{inventory}} --host {{host}} {secret.rotate}, "
        f"then deploy (restarts {secret.restarts})"
    )


def _unsafe(why: str, without_backup: str) -> str:
    return f"it is not safe to rotate ({why}): {_BACKUP}; with no backup, {without_backup}"


def _remade(source: str) -> str:
    return f"it is made from {source}: delete it, and the next render or deploy makes it again"


def _alnum(chars: int) -> Rule:
    return lambda v: alnum_problem(v, chars)


def _plain(what: str, min_length: int = 16) -> Rule:
    return lambda v: plain_token_problem(v, what, min_length)


def _clients(suffix: str) -> Callable[[Stack], list[str]]:
    return lambda s: [f"clients/{c.id}.{suffix}" for c in s.clients if not c.public]


def _users(suffix: str) -> Callable[[Stack], list[str]]:
    return lambda s: [f"users/{u.name}.{suffix}" for u in s.users]


def _tokens(stack: Stack) -> list[str]:
    backup = stack.backup.secret_names if stack.backup else []
    return [f"tokens/{n}" for n in [*stack.token_secrets, *stack.backend_secrets, *backup]]


# Rotation is offered only where it logs nobody out of their authenticator and keeps Claude's
# connector: the Redis password (sessions stay in Redis' volume), the session cookie secret (users
# sign in again), the reset-password JWT secret, the gateway's session key, a client's secret (the
# client is given the new one), a person's password and TOTP seed. Keys that sign tokens or
# encrypt storage are not; their repair says what a new value would break. The first row whose
# path matches a store file describes it.
CATALOGUE: tuple[Secret, ...] = (
    Secret(
        path="redis/password", what="the Redis password",
        consumers="redis (requirepass), authelia (session.redis.password)",
        generate=functools.partial(random_string, REDIS_PASSWORD_CHARS), form=_alnum(REDIS_PASSWORD_CHARS),
        accepted=("redis password", _plain("the value")),
        rotate="redis-password", restarts="redis, authelia",
    ),
    Secret(
        path="authelia/session_secret", what="Authelia's session secret",
        consumers="authelia (session cookies)",
        generate=random_string, form=_alnum(SECRET_CHARS),
        accepted=("authelia session secret", _plain("the value")),
        rotate="session-secret", restarts="authelia",
    ),
    Secret(
        path="authelia/reset_password_jwt_secret", what="Authelia's reset-password JWT secret",
        consumers="authelia (identity validation)",
        generate=random_string, form=_alnum(SECRET_CHARS),
        accepted=("authelia reset-password JWT secret", _plain("the value")),
        rotate="reset-password-jwt-secret", restarts="authelia",
    ),
    Secret(
        path="agentgateway/session_key", what="agentgateway's session key",
        consumers="agentgateway (encrypts MCP session ids)",
        generate=generate_hex_key, form=hex_key_problem,
        accepted=("agentgateway session key", gateway_session_key_problem),
        rotate="gateway-session-key", restarts="agentgateway",
    ),
    Secret(
        path="authelia/storage_encryption_key", what="Authelia's storage encryption key",
        consumers="authelia (its database)",
        generate=random_string, form=_alnum(SECRET_CHARS),
        accepted=("authelia storage encryption key", _plain("the value", AUTHELIA_STORAGE_KEY_MIN)),
        repair=_unsafe(
            "Authelia's database is encrypted with it",
            "delete it and Authelia's data volume (<stack name>-authelia-data), then deploy: users sign in and "
            "consent afresh (TOTP seeds and subjects come back from the store)",
        ),
    ),
    Secret(
        path="authelia/oidc_hmac_secret", what="Authelia's OIDC HMAC secret",
        consumers="authelia (authorization codes, refresh tokens)",
        generate=random_string, form=_alnum(SECRET_CHARS),
        accepted=("authelia OIDC HMAC secret", _plain("the value")),
        repair=_unsafe(
            "it signs the authorization codes and refresh tokens clients hold",
            "delete it and deploy, then connect Claude's connector again",
        ),
    ),
    Secret(
        path=SIGNING_KEY, what="Authelia's token signing key",
        consumers="authelia (signs tokens), agentgateway (its public key, in the JWK Set)",
        generate=generate_rsa_pem, form=rsa_private_key_problem,
        accepted=("authelia signing key id", lambda pem: authelia_key_id_problem(key_id_for(pem))),
        repair=_unsafe(
            "every issued token's key id and signature come from it",
            "delete it and deploy: a new key is made and clients sign in again",
        ),
        leaks=_a_key_line,
    ),
    Secret(
        path=RETIRING_KEY, what="Authelia's retiring token signing key (a rollover is under way)",
        consumers="authelia and agentgateway (verify the tokens it signed until the rollover finishes)",
        generate=None,  # the signing key it was, moved here by `secrets rollover start`
        form=rsa_private_key_problem,
        repair="tokens signed before the rollover are checked with it: restore it from your backup of the store; "
        "with no backup, finish the rollover: mcpgate secrets rollover {inventory} --host {host} finish, and deploy "
        "(clients whose tokens it signed sign in again)",
        leaks=_a_key_line,
    ),
    Secret(
        path="clients/{who}.secret", what="the secret of client {who}",
        consumers="the OAuth client, e.g. Claude's connector (authelia keeps its digest)",
        generate=random_string, form=_alnum(SECRET_CHARS),
        accepted=("client {who} secret", _plain("it")),
        rotate="client/{who}", restarts="authelia",
        repair=_unsafe(
            "the client, e.g. Claude's connector, holds it",
            "replace it: mcpgate secrets rotate {inventory} --host {host} client/{who}, deploy, and paste the new "
            f"secret that {_SHOW} prints into the client's settings",
        ),
        in_stack=_clients("secret"),
    ),
    Secret(
        path="clients/{who}.pbkdf2", what="the digest of client {who}'s secret",
        consumers="authelia (the client's client_secret)",
        generate=None,  # made from the client secret (StackSecrets.client_secret_digest)
        form=pbkdf2_sha512_digest_problem,
        repair=_remade("the client secret"),
        leaks=None,
        in_stack=_clients("pbkdf2"),
    ),
    Secret(
        path="users/{who}.password", what="the initial password of user {who}",
        consumers="the person (authelia keeps its digest)",
        generate=functools.partial(random_string, USER_PASSWORD_CHARS), form=_alnum(USER_PASSWORD_CHARS),
        accepted=("user {who} password", _plain("it", 12)),
        # The deploy sets the person's password to the new initial one, once (mcpgate.users_db).
        rotate="password/{who}", restarts="nothing (it is merged)",
        repair=f"{_BACKUP}; with no backup, give {{who}} a new one: mcpgate secrets rotate {{inventory}} --host "
        f"{{host}} password/{{who}}, deploy, and tell {{who}} the password {_SHOW} prints",
        in_stack=_users("password"),
    ),
    Secret(
        path="users/{who}.argon2id", what="the password digest of user {who}",
        consumers="authelia (its users database)",
        generate=None,  # made from the initial password (StackSecrets.user_password_hash)
        form=argon2id_digest_problem,
        repair=_remade("the user's password"),
        leaks=None,
        in_stack=_users("argon2id"),
    ),
    Secret(
        path="users/{who}.totp", what="the TOTP seed of user {who}",
        consumers="the person's authenticator app, authelia (imported into its database)",
        generate=generate_totp_seed, form=lambda v: totp_seed_form_problem(v, TOTP_SEED_CHARS),
        accepted=("user {who} TOTP seed", totp_seed_problem),
        # Imported into Authelia's database by the deploy (an upsert): no restart.
        rotate="totp/{who}", restarts="nothing (the seed is re-imported)",
        repair=_unsafe(
            "{who}'s authenticator app holds it",
            "replace it: mcpgate secrets rotate {inventory} --host {host} totp/{who}, deploy, and have {who} scan "
            f"the new otpauth:// URI that {_SHOW} prints",
        ),
        in_stack=_users("totp"),
    ),
    Secret(
        path="users/{who}.sub", what="the subject (sub) of user {who}",
        consumers="authelia (the sub claim of the person's tokens), agentgateway (its rules name it)",
        generate=generate_subject, form=canonical_uuid_problem,
        accepted=("user {who} subject", subject_problem),
        repair=_unsafe(
            "Authelia keeps it and has put it in {who}'s tokens",
            "write {who}'s openid identifier from `authelia storage user identifiers export` on the host into it",
        ),
        leaks=None,  # not a secret: it is in every token of the person's
        in_stack=_users("sub"),
    ),
    Secret(
        path=BACKUP_PASSWORD_SECRET, what="the backup repository's password",
        consumers="restic (the backup repository is encrypted with it)",
        generate=random_string, form=_alnum(SECRET_CHARS),
        repair=_unsafe(
            "the backup repository is encrypted with it, and a restore opens it with this one",
            "the snapshots in the repository cannot be read again: delete it, move the old repository away, and "
            "deploy: the next backup starts a new repository with a new password",
        ),
        in_stack=lambda s: [BACKUP_PASSWORD_SECRET] if s.backup else [],
    ),
    Secret(
        path="tokens/{who}", what="the token {who}",
        consumers="agentgateway (a backend's token), a backend (its variables and files), tailscale, restic",
        generate=None,  # a person supplies it: `mcpgate secrets set`
        form=supplied_secret_problem,
        repair="set it again: mcpgate secrets set {inventory} --host {host} {who} (reads the value from stdin)",
        in_stack=_tokens,
    ),
)  # fmt: skip


def entry_for(name: str) -> Secret | None:
    """The row that describes the store file ``name``; None for a name no row knows."""
    return next((s for s in CATALOGUE if s.pattern.fullmatch(name)), None)


def generate(name: str) -> str:
    """A new value for the store file ``name``, from its row's one generator."""
    entry = entry_for(name)
    if entry is None or entry.generate is None:
        raise ValueError(f"no generator makes {name!r}")
    return entry.generate()


def rotatable_by_name() -> dict[str, Secret]:
    """The rows ``secrets rotate`` replaces by a fixed name (``redis-password``), in catalogue order."""
    return {s.rotate: s for s in CATALOGUE if s.rotate and "{who}" not in s.rotate}
