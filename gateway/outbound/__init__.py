"""Outbound side (SPEC §7): persistent queue, SMTP client, DSN/MDN builders, notifications, worker."""
