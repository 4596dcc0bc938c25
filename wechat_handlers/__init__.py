"""Official-account (公众号) messages: what WeChat pushes to /wechat/mp and what we answer.

- `push`: one push from plaintext XML to reply (parsing, de-duplication of WeChat's retries, unit of work).
- `router`: THE table (`ROUTES`) mapping message types, events, menu CLICK keys and keywords / prefix commands
  to handlers, and the 帮助 text generated from it. Add a feature by adding a `Route` line there.
- `conversation`: multi-step chats (an officer posting an announcement):
  `register_conversation(name, handler, message_types=("text",))`, `start_conversation(openid, name, state,
  ttl)`, `end_conversation(openid)`; while one is active, the follower's messages go to its handler first.
- `context.Context`: what a handler gets (the wechatpy message, the sender's openid, their follower record, the
  linked staff member's cached card and, read on first use, their Staff row, or None; the text and a prefix
  command's argument).
- `staff`: what every follower can do (follow, link by code, 我的, 帮助 ...).

Handlers are thin: they call `app.services` for every change and return the reply text (None: no reply).
A handler raising `Refusal` answers with its Chinese message and changes nothing.
"""
