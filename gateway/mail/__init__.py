"""Mail flow: SMTP listeners, routing facts, the delivery pipeline."""
