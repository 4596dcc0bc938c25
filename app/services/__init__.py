"""Domain services, one module per area: the only code that changes state. They flush; callers commit."""
