"""The typed model of a Serverless Workflow 1.0.3 document: validation, positions, static checks.

``base`` (shared types), ``common``, ``auth``, ``events``, ``calls``, ``tasks`` and ``workflow``
mirror the specification's sections; ``errors`` turns pydantic's errors into findings with
positions; ``checks`` holds the cross-references pydantic cannot see.
"""
