"""Condolences (慰问), part 1: rates (`rates`), filing and the applicant's steps (`filing`), the two-level review
(`review`), what every step shares — visibility, sealed fields, history, notices (`records`) — and key rotation
(`keys`). Who may see and do what is decided in app.services.policy."""
