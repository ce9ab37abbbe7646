"""The sender's API (`dlr api`): register sent messages with their consent, ask what
became of them. A Starlette app of its own, apart from the webhook ingress, so the
providers' hot path stays minimal.

    settings.py  ApiSettings (DLR_API_*)
    keys.py      API keys (SHA-256 of bearer tokens), scopes, tenants, the dev key
    errors.py    the refusals (the ingress's JSON error shape, stable codes)
    models.py    what a registration may say (pydantic), and its dlr.sends.v1 records
    lookup.py    status lookups in ClickHouse by primary key
    app.py       routes, the producer, metrics
    openapi.py   /openapi.json
"""

__all__: list[str] = []
