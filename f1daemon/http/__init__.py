"""The HTTP API: OpenF1's endpoints over the one reader (`f1daemon.services.reader`).

`openf1` makes OpenF1's tables from our exports, `query` reads OpenF1's filters,
`service` answers a request as plain functions, `app` is the ASGI app (Starlette)
with its bounds, `server` serves it with Hypercorn's trio worker, and `exposure`
says who may reach it. `f1daemon serve` and `[http]` in `f1daemon run` serve it.
"""
