"""Command class → handler: the dispatch table the session uses (one per command group)."""

from __future__ import annotations

from imap import command as c
from imap import handlers_any as any_
from imap import handlers_auth as auth
from imap import handlers_fetch as fetch
from imap import handlers_list as listing
from imap import handlers_nonauth as nonauth
from imap import handlers_select as sel
from imap import search
from imap.session import Handler

HANDLERS: dict[type[c.Command], Handler] = {
    c.Capability: any_.capability, c.Noop: any_.noop, c.Logout: any_.logout, c.Id: any_.id_,
    c.StartTls: nonauth.starttls, c.Login: nonauth.login, c.Authenticate: nonauth.authenticate,
    c.Select: auth.select, c.Examine: auth.select, c.Create: auth.create, c.Delete: auth.delete,
    c.Rename: auth.rename, c.Subscribe: auth.subscribe, c.Unsubscribe: auth.unsubscribe,
    c.List: listing.list_, c.Lsub: listing.lsub, c.Status: auth.status, c.Append: auth.append,
    c.Enable: auth.enable, c.Namespace: auth.namespace, c.Idle: auth.idle,
    c.Check: sel.check, c.Close: sel.close, c.Unselect: sel.unselect, c.Expunge: sel.expunge,
    c.Search: search.search, c.Fetch: fetch.fetch, c.Store: sel.store, c.Copy: sel.copy,
    c.Move: sel.move,
}  # fmt: skip
