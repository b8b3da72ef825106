"""The read-only web page of `commands serve`: the books, the transactions, any day's audit,
the reconciliation runs and a chart, from the same views and documents as the CLI.

Everything it needs ships in this package (templates/, static/): no asset is fetched from
another site, and no script runs in the browser.
"""

from commands.web.app import create_app

__all__ = ["create_app"]
