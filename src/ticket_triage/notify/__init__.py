"""Outbound notifications: every routing decision goes through a database outbox to a configured URL.

``outbox`` is the table and the hand-off the durable writer uses, ``leases`` how workers take rows from it,
``signing`` and ``policy`` what one attempt sends and what its answer means, ``delivery`` the worker.
Nothing is imported here, so the writer can use the outbox without pulling in the HTTP client.
"""
