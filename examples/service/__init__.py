"""The support desk as an HTTP service: an ASGI application (Starlette) with durable runs.

* `examples.service.app`: `Settings`, the service's runner, and `create_app`;
* ``python -m examples.service``: serve it with uvicorn on 127.0.0.1 (see README.md).
"""
