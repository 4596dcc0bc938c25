"""Money as people read it: amounts are kept in fen (分) and shown in yuan."""


def yuan(fen: int) -> str:
    """20000 -> "200", 12345 -> "123.45"."""
    return f"{fen // 100}" if fen % 100 == 0 else f"{fen / 100:.2f}"
