"""pytest collects ``docs/*.md`` as doctests (``--doctest-glob``) and every module under
``docs`` with ``--doctest-modules``; keep it away from the Sphinx sources: ``conf.py``
writes files, and the tutorial scripts run (with figures) only when the site is built."""
collect_ignore = ["docs/conf.py"]
collect_ignore_glob = ["docs/_build/*", "docs/_ext/*", "docs/tutorials/*", "docs/auto_tutorials/*",
                       "docs/generated/*"]
