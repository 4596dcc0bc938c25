"""The project's own fake WeChat API server: a real HTTP server on loopback that speaks WeChat's JSON.

Used by the tests, the demo and the benchmarks; `wechat.api_base_url` is pointed at `FakeWeChatServer.url`.
"""

from app.fakewechat.server import FakeWeChatApp, FakeWeChatServer, serve
from app.fakewechat.state import FakeApp, FakeUser

__all__ = ["FakeApp", "FakeUser", "FakeWeChatApp", "FakeWeChatServer", "serve"]
