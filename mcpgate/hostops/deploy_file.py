"""The deploy file, named as a module, so that pyinfra's ordering of operations stays cheap.

pyinfra orders each operation by the line numbers on the call stack: for every operation it calls
``inspect.stack()`` and ``inspect.getframeinfo`` once per frame (``get_operation_order_from_stack`` in
pyinfra/api/util.py). For each frame ``inspect.getmodule`` looks the frame's file up among the loaded
modules, and when the file is no module's it scans all of them again (some 900 in a deploy, ~2 ms).
The deploy file is such a file: pyinfra ``exec``s it, it is never imported, and it is on the stack of
every operation. Named once as a module, its lookups are a dictionary's.
"""

from __future__ import annotations

import os
import sys
import types

MODULE_NAME = "_mcpgate_deploy_file"


def name_deploy_file(path: str) -> None:
    """Make ``path`` (the running deploy file's ``__file__``) known to ``inspect`` as a module's file.

    **Example:**

    .. code:: python

        name_deploy_file(__file__)  # at the top of deploy.py
    """
    module = types.ModuleType(MODULE_NAME, "the deploy file pyinfra runs (see mcpgate.hostops.deploy_file)")
    module.__file__ = os.path.abspath(path)
    sys.modules[MODULE_NAME] = module
