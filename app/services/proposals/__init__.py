"""Staff-congress proposals (教代会提案): congress (terms, sessions, representatives, committee, liaisons), filing
(and seconding), review (the window's close and the committee's decisions), handling (交办, 退办, opinions, answers,
reminders), satisfaction, and the session's documents. `records` holds what they share."""
