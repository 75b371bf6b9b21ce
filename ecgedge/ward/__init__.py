"""``ecgedge ward``: one gateway for a ward of bedside devices.

    devices --TCP (wire protocol)--> gateway: per connection a FrameDecoder, bounded buffers and limits
            --frames keyed by bed--> engine (one StreamSession, one StreamHub: the monitors of ``ecgedge stream``)
            --records--> writer (one task: SQLite in WAL, or PostgreSQL) --committed--> the page (server-sent events)

- :mod:`ecgedge.ward.events`: the gateway's own typed events (a bed's link, a bed name assigned, a
  device dropped for misbehaving) and :func:`~ecgedge.ward.events.alarm_of`, the one alarm policy
  (which records raise or clear which alarm, at which priority);
- :mod:`ecgedge.ward.engine`: bytes of many connections -> one session's records, live strips;
- :mod:`ecgedge.ward.store`: the database (schema, one writer, queries, CSV and FHIR exports);
- :mod:`ecgedge.ward.gateway`: the asyncio TCP server, limits, the writer thread, :func:`~ecgedge.ward.gateway.run_ward`;
- :mod:`ecgedge.ward.web`: the central-station page (Starlette), guarded by a token.

The edge runtime does not need this package: it sits beside the CLI, above ``ecgedge.stream``, and
its web and database dependencies are the ``ward`` extra.
"""
