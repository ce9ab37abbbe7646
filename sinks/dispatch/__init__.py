"""`dlr dispatch`: actions of dlr.actions.v1 delivered as signed webhooks (service.py),
and `dlr dispatch retry`, the bulk re-send of dead-lettered ones (retry.py)."""

__all__: list[str] = []
