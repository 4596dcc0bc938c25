"""Events (活动报名), one module per concern:

- `records`: the event's record — fields, signup questions, labels, phase; looking it up and locking it;
- `lifecycle`: what officers do with an event — create, edit, publish, close signup, cancel; their list;
- `seats`: signing up, cancelling, the waiting list and places, under the event's lock;
- `cards`: events as one staff member sees them;
- `signup_lists`: the officers' list of an event's signups, its XLSX export, signing up and cancelling for members;
- `checkin`: signed QR check-in;
- `reminders`: the scheduler's reminders and marking past events finished.

Who may see or manage an event is decided by app.services.policy.
"""
