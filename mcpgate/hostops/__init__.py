"""The pyinfra adapter layer: everything of mcpgate that talks to pyinfra or to a host is here.

The rest of ``mcpgate`` is pure logic (the model, secrets, rendering, container specs, policy): it
neither imports pyinfra nor runs a command. This package turns that logic into pyinfra facts and
operations, and the ``tasks/`` package and ``deploy.py`` call them. As in pyinfra's own code
(``facts/docker.py`` apart from ``operations/docker.py``), the facts live apart from the operations:
facts at the bottom, the snapshot that gathers them above them, the operations on top.

- :mod:`.context`: the deploy context of a host (validated stack, rendered files, containers) and
  what the deploy will read from the host (:func:`.context.snapshot_query`);
- :mod:`.snapshot`: one round trip reads every fact the operations need; a change marks stale only
  what it touched;
- :mod:`.upload`: private uploads (never readable by another user, never through /tmp);
- :mod:`.messages`: what an operation says in pyinfra's output besides its commands;
- facts: :mod:`.file_facts` (the stack's files, the record of what was placed, paths),
  :mod:`.docker_facts` (the engine, containers, networks, volumes, images, readiness),
  :mod:`.authelia_facts` (markers and files in Authelia's volume, the subjects in its database);
  :mod:`.docker_reads`: Docker's facts as the operations read them, from the snapshot where it covers them;
- :mod:`.shell`: how an operation writes a command (every argument quoted);
- :mod:`.filesync`: the stack's folders and files, the record of what the deploy placed, data folders;
- :mod:`.engine`: Docker: networks, volumes, images, containers and their readiness;
- :mod:`.authelia_cli`: users' TOTP seeds and OIDC subjects, through Authelia's CLI;
- :mod:`.tailnet`: joining the tailnet and Funnel.

Operations compare what the model wants with what the host has and do something only on a
difference: a run that finds everything as wanted yields no command at all, so pyinfra reports no
change.
"""
