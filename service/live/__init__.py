"""Live pages: answers checked against pages as they are now, fetched at question time.

- ``options``: the request's live fields (``urls``, ``sources``, ``search``, ``recheck``, ``budget_s``)
  and the service's limits;
- ``pages``: fetching, rechecking and embedding them into a temporary index within the budget;
- ``cache``: recently fetched pages with their vectors;
- ``websearch``: the search providers a question may ask for.
"""

from citeline.service.exceptions import LiveRequestError, SearchError, UrlRefusedError
from citeline.service.live.cache import LivePage, LivePageCache
from citeline.service.live.options import LiveConfig, LiveOptions, LiveRequest, Retrieve
from citeline.service.live.pages import LivePages, select_passages
from citeline.service.live.websearch import SearchProvider, SearchResult, SearxngSearch, StaticSearch, search_query

__all__ = [
    "LiveConfig",
    "LiveOptions",
    "LivePage",
    "LivePageCache",
    "LivePages",
    "LiveRequest",
    "LiveRequestError",
    "Retrieve",
    "SearchError",
    "SearchProvider",
    "SearchResult",
    "SearxngSearch",
    "StaticSearch",
    "UrlRefusedError",
    "search_query",
    "select_passages",
]
