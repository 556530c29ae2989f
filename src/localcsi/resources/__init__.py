"""The custom resources as typed dicts: one module per kind, with the schema's names and accessors.

The objects stay the apiserver's JSON dicts (``TypedDict`` costs nothing at run time); mypy checks
every key the code reads or writes, and ``tests/unit/resources/test_resources_crds.py`` checks the
types against the CRDs in ``deploy/crds``. This package sits below agent, controller, driver and
extender: it imports only the standard library and ``localcsi.core``.
"""
