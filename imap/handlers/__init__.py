"""The command handlers, one module per state / command group (pymap ``command/`` style),
and the dispatch table the session uses.

* :mod:`~imap.handlers.nonauth`: any state and not authenticated (RFC 3501 §6.1, §6.2);
  :mod:`~imap.handlers.bearer`: AUTHENTICATE OAUTHBEARER / XOAUTH2 (RFC 7628);
* :mod:`~imap.handlers.auth`, :mod:`~imap.handlers.mailboxes` and :mod:`~imap.handlers.append`: authenticated (§6.3);
  :mod:`~imap.handlers.notify` (RFC 5465) and :mod:`~imap.handlers.qresync` (RFC 7162 §3.2) too;
* :mod:`~imap.handlers.quota`: QUOTA (RFC 9208), authenticated;
* :mod:`~imap.handlers.selected`, :mod:`~imap.handlers.fetch`, :mod:`~imap.handlers.search`,
  :mod:`~imap.handlers.sort`, :mod:`~imap.handlers.thread`: selected (§6.4; RFC 5256).

A handler gets the session and its typed command, writes untagged responses through the
session and returns the tagged OK from the catalogue (:mod:`imap.proto.replies`), or
raises an :mod:`imap.proto.errors` error for NO / BAD. Whether the command is valid in the
current state was checked before, against :mod:`imap.state`.
"""

from __future__ import annotations

from imap.handlers import append, auth, compress, fetch, mailboxes, nonauth, notify, quota, search, sort, thread
from imap.handlers import selected as sel
from imap.proto import commands as c
from imap.session import Handler

HANDLERS: dict[type[c.Command], Handler] = {
    c.Capability: nonauth.capability, c.Noop: nonauth.noop, c.Logout: nonauth.logout, c.Id: nonauth.id_,
    c.StartTls: nonauth.starttls, c.Login: nonauth.login, c.Authenticate: nonauth.authenticate,
    c.Select: auth.select, c.Examine: auth.select, c.Create: mailboxes.create, c.Delete: mailboxes.delete,
    c.Rename: mailboxes.rename, c.Subscribe: mailboxes.subscribe, c.Unsubscribe: mailboxes.unsubscribe,
    c.List: mailboxes.list_, c.Lsub: mailboxes.lsub, c.Status: auth.status, c.Append: append.append,
    c.Enable: auth.enable, c.Namespace: auth.namespace, c.Idle: auth.idle, c.Compress: compress.compress,
    c.Check: sel.check, c.Close: sel.close, c.Unselect: sel.unselect, c.Expunge: sel.expunge,
    c.Search: search.search, c.Fetch: fetch.fetch, c.Store: sel.store, c.Copy: sel.copy,
    c.Move: sel.move, c.Sort: sort.sort, c.Thread: thread.thread, c.Notify: notify.notify,
    c.CancelUpdate: search.cancel_update,  # RFC 5267 §4.3
    c.GetQuota: quota.getquota, c.GetQuotaRoot: quota.getquotaroot, c.SetQuota: quota.setquota,
}  # fmt: skip
