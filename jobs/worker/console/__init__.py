"""The worker's web side: the HTTP API and the console, on the port of ``/healthz`` and ``/metrics``.

``app`` builds the one Starlette app, ``access`` decides who may use it, ``ops`` does what the API
and the pages ask, ``api`` and ``pages`` are the two faces; ``templates/`` and ``static/`` ship in
the package (no CDN: nothing is fetched from elsewhere).
"""
