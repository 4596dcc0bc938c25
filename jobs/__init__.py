"""Background processes: the scheduler (one leader at a time) and the outbox senders (any number)."""
