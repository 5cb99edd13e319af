"""The streaming server (FastAPI + WebSocket) that serves any registered backend over the ``s2s-ws/1`` protocol.

Install the ``serve`` extra. Modules: :mod:`.protocol` (messages and audio encodings, shared with the ``remote``
backend), :mod:`.app` (the application), :mod:`.driver` (one backend session per thread), :mod:`.limits`,
:mod:`.metrics`, :mod:`.serving` (load a backend, run a server in a thread), :mod:`.load` (the load suite).
"""
