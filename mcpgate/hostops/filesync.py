"""The stack's folders and files on the host, the record of the files the deploy placed there, and the
host folders backends mount.

- :func:`stack_files` writes rendered files (owner, mode and content compared by sha256);
- :func:`prune_stack_files` removes the files an earlier deploy placed and the render no longer has;
- :func:`data_directory` creates a backend's data folder, and never touches an existing one.
"""

from __future__ import annotations

import posixpath
from shlex import quote as _q

from pyinfra.api import operation

from ..layout import MANIFEST
from ..rendered import HostDir, HostFile
from . import snapshot
from .file_facts import LEADS_TO, DeployedFiles, PathExists, PathInfo, StackTree
from .messages import noop_when_unchanged, say
from .snapshot import read_fact
from .upload import finish_private_upload, prepare_private_uploads, private_upload, staging_dir


def stack_tree(base: str) -> dict[str, PathInfo]:
    """:class:`StackTree` of ``base``, from the deploy's snapshot where it covers it."""
    return read_fact(StackTree, "tree", lambda q: q.base_dir == base, base=base)


# --- operations ---------------------------------------------------------------------------------


def _components(dirs: list[HostDir], files: list[HostFile]) -> str:
    """The top folders of what a stack_files operation places (the deploy runs one per component)."""
    return ", ".join(sorted({p.path.split("/", 1)[0] for p in [*dirs, *files]}))


@operation()
# Not "deployed": the files written here are rendered ones, which the prune keeps whatever it reads.
@snapshot.changes_host("tree")
@noop_when_unchanged(lambda a: f"{_components(a['dirs'], a['files'])}: the files under {a['base_dir']} are as rendered")
def stack_files(base_dir: str, dirs: list[HostDir], files: list[HostFile]):
    """
    Make folders and files under ``base_dir`` exactly as rendered: content, owner, mode.

    + base_dir: the stack's folder on the host
    + dirs: folders to create (relative to base_dir), in order
    + files: files to write (relative to base_dir)

    Files are written next to their target and renamed into place, so a container never reads a
    half-written file; every folder holding a secret is 0700 before anything is put in it, and each
    file is uploaded privately (:func:`prepare_private_uploads`). Nothing is removed here: see
    :func:`prune_stack_files`.

    **Example:**

    .. code:: python

        stack_files(name="agentgateway files", base_dir="/opt/mcpgate", dirs=[...], files=[...])
    """
    tree = stack_tree(base_dir)
    upload_dir = staging_dir(base_dir)

    for d in [HostDir("", 0o755, "0:0"), *dirs]:
        path = posixpath.join(base_dir, d.path) if d.path else base_dir
        have = tree.get(path)
        if have is None:
            yield f"install -d -m {d.mode:o} -o {d.owner.split(':')[0]} -g {d.owner.split(':')[1]} {_q(path)}"
        elif have.kind != "d":
            raise ValueError(f"{path} exists on the host and is not a folder; move it away")
        else:
            if have.owner != d.owner:
                yield f"chown {d.owner} {_q(path)}"
            if have.mode != d.mode:
                yield f"chmod {d.mode:o} {_q(path)}"

    writes: list[tuple[HostFile, str, str]] = []  # (file, its path, the temporary file beside it)
    fixes: list[str] = []
    for f in files:
        path = posixpath.join(base_dir, f.path)
        have = tree.get(path)
        if have is not None and have.kind != "f":
            raise ValueError(f"{path} exists on the host and is not a file; move it away")
        if have is None or have.sha256 != f.sha256:
            tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.mcpgate-new")
            writes.append((f, path, tmp))
        else:
            if have.owner != f.owner:
                fixes.append(f"chown {f.owner} {_q(path)}")
            if have.mode != f.mode:
                fixes.append(f"chmod {f.mode:o} {_q(path)}")

    if writes:
        yield prepare_private_uploads(upload_dir, [tmp for _, _, tmp in writes])
    for f, path, tmp in writes:
        yield private_upload(f.content, tmp, upload_dir)
        yield (
            f"chown {f.owner} {_q(tmp)} && chmod {f.mode:o} {_q(tmp)} && mv -f {_q(tmp)} {_q(path)} "
            f"&& {finish_private_upload(upload_dir, tmp)}"
        )
    yield from fixes


def _manifest_path_problem(rel: str) -> str | None:
    """Why ``rel`` cannot be a manifest entry (a plain relative path below base_dir), or None."""
    if not rel or rel.startswith("/") or "\n" in rel or "\r" in rel or rel.startswith("#"):
        return "not a plain relative path"
    if posixpath.normpath(rel) != rel or rel.split("/")[0] == "..":
        return "not normalised, or outside base_dir"
    return None


def manifest_text(files: list[str]) -> str:
    """The manifest's content: a comment, then each relative path on a line, sorted."""
    header = "# mcpgate: the files the deploy placed in this folder; it only ever removes files listed here\n"
    return header + "".join(f"{rel}\n" for rel in sorted(set(files)))


@operation()
@snapshot.changes_host("tree", "deployed")
@noop_when_unchanged("no file the deploy placed under {base_dir} is left over")
def prune_stack_files(base_dir: str, files: list[str]):
    """
    Remove the files an earlier deploy placed under ``base_dir`` that the render no longer has,
    and record the files placed now. Nothing the deploy did not write is ever removed.

    + base_dir: the stack's folder on the host
    + files: every rendered file, relative to base_dir

    The record is ``base_dir/.mcpgate-manifest`` (root, 0600): one relative path a line. A file
    is removed only when the previous record lists it, the render no longer has it, and it is a
    regular file under base_dir (not a symlink, not behind one). A host deployed before the record
    existed has none: then nothing is removed, the output says so, and the record is written. Run
    it after the files are written: a run that fails before leaves new files unrecorded, which
    only means they are never removed.

    Reading the record and the folder is one command; a run with nothing to do writes nothing.

    **Example:**

    .. code:: python

        prune_stack_files(name="files no longer rendered", base_dir="/opt/mcpgate", files=[...])
    """
    for rel in files:
        problem = _manifest_path_problem(rel)
        if problem:
            raise ValueError(f"cannot record {rel!r} in {MANIFEST}: {problem}")
    have = read_fact(DeployedFiles, "deployed", lambda q: q.base_dir == base_dir, base=base_dir)
    wanted = sorted(set(files))
    remove: list[str] = []
    if have.manifest is None:
        say(
            f"{posixpath.join(base_dir, MANIFEST)} is missing (a deploy by an older mcpgate, or the first): "
            f"nothing removed; recording the {len(wanted)} files placed now"
        )
    else:
        for rel in sorted(set(have.manifest) - set(wanted)):
            path = posixpath.join(base_dir, rel)
            if _manifest_path_problem(rel) is not None:
                say(f"{MANIFEST} lists {rel!r}, which is no path below {base_dir}: ignored")
            elif path in have.files:  # gone already, or no longer a regular file: left alone
                remove.append(path)
    # One command: the removals, then the new record (kept as it was if a removal fails).
    steps = [f"rm -f -- {' '.join(_q(path) for path in remove)}"] if remove else []
    manifest = posixpath.join(base_dir, MANIFEST)
    if have.manifest is None or list(have.manifest) != wanted:
        tmp = posixpath.join(base_dir, f"{MANIFEST}.mcpgate-new")
        lines = " ".join(_q(line) for line in manifest_text(wanted).splitlines())
        steps += [
            "umask 077",
            f"rm -f {_q(tmp)}",
            f"printf '%s\\n' {lines} > {_q(tmp)}",
            f"chown 0:0 {_q(tmp)}",
            f"mv -f {_q(tmp)} {_q(manifest)}",
        ]
    elif have.manifest_stat != "0:0|600":
        steps += [f"chown 0:0 {_q(manifest)}", f"chmod 600 {_q(manifest)}"]
    if steps:
        yield " && ".join(steps)


@operation()
@snapshot.changes_host("path")
@noop_when_unchanged()
def data_directory(path: str, owner: str | None):
    """
    A host folder a backend mounts (e.g. the notes vault): created private to the backend's user
    when missing; an existing folder is the user's data and is left exactly as it is.

    **Example:**

    .. code:: python

        data_directory(name="notes vault folder", path="/srv/notes", owner="1000:1000")
    """
    kind = read_fact(PathExists, f"path:{path}", lambda q: path in q.paths, path=path)
    # Docker resolves links when it mounts: a link would hand the backend a place the inventory's
    # checks never saw (/srv/notes -> /etc).
    if kind == "symbolic link":
        raise ValueError(
            f"{path} is a symbolic link on the host: Docker would mount whatever it points to, which the "
            "inventory's checks never saw; name the real folder in the inventory"
        )
    if kind is not None and kind.startswith(LEADS_TO):
        raise ValueError(
            f"{path}: a folder on the way is a symbolic link on the host, so Docker would mount "
            f"{kind.removeprefix(LEADS_TO)}, which the inventory's checks never saw; "
            "name the real folder in the inventory"
        )
    if kind == "directory":
        return f"{path} exists"
    if kind is not None:
        raise ValueError(f"{path} exists on the host and is a {kind}, not a folder")
    uid, gid = (owner or "0:0").split(":")
    yield f"install -d -m 750 -o {uid} -g {gid} {_q(path)}"
