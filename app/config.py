"""Configuration: built-in defaults, a TOML file, then environment overrides; validated once at start.

The file is the one named by SMART_UNION_CONFIG. An environment variable SMART_UNION__SECTION__KEY (or
SMART_UNION__SECTION__SUB__KEY for nested tables) overrides one key; its value is read as TOML when it parses
(numbers, booleans, arrays) and as a plain string otherwise, so secrets can stay out of the file.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import tomllib
from datetime import date
from datetime import time as time_of_day
from pathlib import Path
from typing import Any, Literal

from limits import parse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "SMART_UNION__"
CONFIG_PATH_ENV = "SMART_UNION_CONFIG"
HOME_ENV = "SMART_UNION_HOME"
REPOSITORY = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A configuration problem, worded as one line that names the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppSection(Section):
    secret_key: str = "dev-only-change-me"
    token_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=60)
    max_request_bytes: int = Field(default=2 * 1024 * 1024, gt=1024)
    timezone: str = "Asia/Shanghai"
    trusted_proxy_hops: int = Field(default=0, ge=0, le=5)   # proxies in front whose X-Forwarded-For we trust
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    testing: bool = False          # set by the test suite only
    clock_file: str = ""           # tests and the demo only: a file holding an ISO time read as "now" (app.clock)


class DatabaseSection(Section):
    url: str = "sqlite:///instance/smart-union.db"
    pool_size: int = Field(default=10, ge=1, le=90)
    max_overflow: int = Field(default=5, ge=0, le=90)
    pool_timeout_seconds: float = Field(default=10, gt=0)
    pool_recycle_seconds: int = Field(default=1800, ge=60)
    ping_after_idle_seconds: float = Field(default=10, ge=0)
    echo: bool = False


class RedisSection(Section):
    url: str = ""
    embedded_path: str = "instance/redis.db"
    key_prefix: str = "su:"


class MiniProgramSection(Section):
    appid: str = "wxminidemo0000001"
    secret: str = "mini-secret-demo"


class MenuButton(Section):
    """One button of the official account's custom menu (自定义菜单), in WeChat's own field names."""

    name: str = Field(min_length=1, max_length=20)
    type: Literal["click", "view", "miniprogram"] | None = None
    key: str | None = Field(default=None, max_length=128)   # click: the CLICK event's EventKey
    url: str | None = None                                  # view / miniprogram (fallback page)
    appid: str | None = None                                # miniprogram
    pagepath: str | None = None                             # miniprogram
    sub_button: list[MenuButton] = Field(default_factory=list, max_length=5)

    @model_validator(mode="after")
    def _complete(self):
        needs = {"click": ("key",), "view": ("url",), "miniprogram": ("url", "appid", "pagepath")}
        if self.sub_button and self.type:
            raise ValueError(f"菜单“{self.name}”有子菜单时不能再设置 type")
        if not self.sub_button and not self.type:
            raise ValueError(f"菜单“{self.name}”需要 type（click、view 或 miniprogram）或 sub_button")
        missing = [f for f in needs.get(self.type or "", ()) if not getattr(self, f)]
        if missing:
            raise ValueError(f"菜单“{self.name}”（{self.type}）缺少 {'、'.join(missing)}")
        return self


DEFAULT_MENU: list[dict] = [
    {"name": "公告", "type": "click", "key": "ANNOUNCEMENTS"},
    {"name": "活动", "type": "click", "key": "EVENTS"},
    {"name": "服务", "sub_button": [
        {"name": "我的信息", "type": "click", "key": "ME"},
        {"name": "绑定说明", "type": "click", "key": "LINK"},
        {"name": "帮助", "type": "click", "key": "HELP"},
    ]},
]


class OfficialAccountSection(Section):
    appid: str = "wxmpdemo000000001"
    secret: str = "mp-secret-demo"
    token: str = "smartunion"
    encoding_aes_key: str = ""
    message_mode: Literal["plaintext", "compatible", "safe"] = "plaintext"
    max_push_bytes: int = Field(default=64 * 1024, ge=1024)       # larger pushes are refused unread
    timestamp_tolerance_seconds: int = Field(default=300, ge=30, le=3600)  # a signed push older or newer is refused
    link_code_ttl_seconds: int = Field(default=600, ge=60, le=3600)  # the 6-digit "绑定" code
    conversation_ttl_seconds: int = Field(default=1800, ge=60, le=86400)  # an idle chat (发布公告) expires
    menu: list[MenuButton] = Field(default_factory=lambda: [MenuButton.model_validate(b) for b in DEFAULT_MENU],
                                   min_length=1, max_length=3)

    @model_validator(mode="after")
    def _aes_key_when_encrypted(self):
        if self.message_mode != "plaintext" and len(self.encoding_aes_key) != 43:
            raise ValueError("兼容模式和安全模式需要 43 个字符的 encoding_aes_key")
        return self


class WeChatSection(Section):
    api_base_url: str = "https://api.weixin.qq.com/"
    timeout_seconds: float = Field(default=5, gt=0)
    token_lock_seconds: float = Field(default=10, gt=0)
    force_refresh_min_interval_seconds: int = Field(default=30, ge=30)
    miniprogram: MiniProgramSection = MiniProgramSection()
    official_account: OfficialAccountSection = OfficialAccountSection()


class AuthSection(Section):
    bind_code_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=300)


class LimitsSection(Section):
    """Each limit as "N/second|minute|hour|day" (app.services.rate_limits)."""

    bind_failures_per_account: str = "5/hour"
    bind_failures_per_source: str = "30/hour"
    bind_code_failures_per_staff: str = "5/hour"
    logins_per_source: str = "60/minute"
    officer_notices_per_officer: str = "30/hour"
    bind_codes_per_officer: str = "60/hour"
    link_codes_per_staff: str = "10/hour"
    link_failures_per_account: str = "5/hour"
    link_failures_total: str = "300/hour"
    redeem_guesses_per_cashier: str = "10/hour"
    redeem_guesses_per_merchant: str = "30/day"

    @field_validator("*")
    @classmethod
    def _a_limit(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError("应为“次数/时间单位”，如 5/hour、60/minute") from None
        return value


class ChannelLimits(Section):
    daily_quota: int = Field(default=0, ge=0)          # 0 = no limit of ours
    rate_per_second: float = Field(default=0, ge=0)    # 0 = no limit of ours


class MessageTemplate(Section):
    template_id: str
    fields: dict[str, str]          # WeChat data key -> name of a value the notice carries
    page: str | None = None         # mini-program page opened from the message; may use {placeholders}


class NoticeKind(Section):
    channels: list[Literal["template", "subscribe"]] = []   # tried in this order; the inbox always holds it
    template: MessageTemplate | None = None
    subscribe: MessageTemplate | None = None


DEFAULT_NOTICE_KINDS: dict[str, dict] = {
    "announcement": {
        "channels": ["template", "subscribe"],
        "template": {"template_id": "TPL-MP-ANNOUNCEMENT", "fields": {"thing1": "title", "time2": "time"},
                     "page": "pages/announcements/detail?id={announcement_id}"},
        "subscribe": {"template_id": "TPL-MINI-ANNOUNCEMENT", "fields": {"thing1": "title", "time2": "time"},
                      "page": "pages/announcements/detail?id={announcement_id}"},
    },
    "service": {
        "channels": ["template", "subscribe"],
        "template": {"template_id": "TPL-MP-SERVICE", "fields": {"thing1": "title", "thing2": "summary",
                                                                 "time3": "time"}},
        "subscribe": {"template_id": "TPL-MINI-SERVICE", "fields": {"thing1": "title", "thing2": "summary",
                                                                    "time3": "time"}},
    },
    "greeting": {
        "channels": ["subscribe"],
        "subscribe": {"template_id": "TPL-MINI-GREETING", "fields": {"thing1": "title", "thing2": "summary"}},
    },
}


class NotificationsSection(Section):
    fanout_batch: int = Field(default=1000, ge=1, le=20000)
    # A whole number of waves of in_flight sends (no half-empty last wave), and few enough that a round of them,
    # every send timing out twice (connect, read), ends within the lease (jobs.sender warns otherwise): 10 waves
    # of 8, behind the last wave of the round before, take 112 s at worst. In bench/ fanout (4 x 8, 2026-12-01) 50 a round sent 0.48-0.54x of the fake
    # WeChat's ceiling, 96 sent 0.68x and 200 sent 0.65x.
    claim_batch: int = Field(default=80, ge=1, le=1000)
    in_flight: int = Field(default=8, ge=1, le=256)
    max_attempts: int = Field(default=5, ge=1)
    backoff_seconds: float = Field(default=30, gt=0)
    # A row left "sending" this long is taken back: a template message is resent (WeChat drops the repeat by
    # client_msg_id within 10 minutes, so this must stay well below 600), a subscribe message becomes "unknown".
    lease_seconds: int = Field(default=120, ge=5, le=480)
    # Outcomes are written in one transaction per round, or sooner once the oldest has waited this long; a sender
    # that dies loses at most these (their rows come back after the lease), so it stays well under the lease.
    outcome_max_age_seconds: float = Field(default=2.0, gt=0, le=60)
    poll_seconds: float = Field(default=1.0, gt=0)
    stuck_after_seconds: int = Field(default=600, ge=60)   # /readyz says "outbox: stuck" past this
    template: ChannelLimits = ChannelLimits(daily_quota=100_000)
    subscribe: ChannelLimits = ChannelLimits()
    kinds: dict[str, NoticeKind] = Field(default_factory=lambda: {
        k: NoticeKind.model_validate(v) for k, v in DEFAULT_NOTICE_KINDS.items()})

    @field_validator("kinds", mode="before")
    @classmethod
    def _keep_default_kinds(cls, value: dict) -> dict:
        return {**DEFAULT_NOTICE_KINDS, **value}

    @model_validator(mode="after")
    def _outcomes_well_within_the_lease(self):
        if self.outcome_max_age_seconds * 2 > self.lease_seconds:
            raise ValueError("outcome_max_age_seconds 不能超过 lease_seconds 的一半")
        return self


class VouchersSection(Section):
    """The first voucher policy (copied into the database once, when it holds none; officers change it there), and
    how vouchers are shown and reminded."""

    face_value_fen: int = Field(default=20000, ge=1, le=1_000_000)
    cost_fen: int = Field(default=18000, ge=0, le=1_000_000)
    merchant: str = Field(default="指定蛋糕店", min_length=1, max_length=100)
    issue_mode: Literal["days_before", "month_start"] = "days_before"
    issue_days_before: int = Field(default=7, ge=0, le=60)
    valid_days: int = Field(default=60, ge=1, le=366)
    retirees_eligible: bool = True
    yearly_cap_fen: int = Field(default=30000, ge=1, le=1_000_000)
    show_window_seconds: int = Field(default=60, ge=15, le=120)     # a shown code lives one window (and the next)
    undo_minutes: int = Field(default=30, ge=0, le=24 * 60)          # a redemption may be undone this long after
    reminder_days_before_expiry: int = Field(default=7, ge=0, le=60)

    @model_validator(mode="after")
    def _within_the_cap(self):
        if self.face_value_fen > self.yearly_cap_fen:
            raise ValueError("face_value_fen 不能超过 yearly_cap_fen（每人每年面值上限）")
        return self


class MetricsSection(Section):
    allow_from: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])   # networks /metrics answers
    token: str = ""                 # or any address, with "Authorization: Bearer <token>"
    port: int = Field(default=0, ge=0, le=65535)   # a sender or scheduler on a host of its own serves metrics here

    @field_validator("allow_from")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net)
            except ValueError:
                raise ValueError(f"不是有效的网段：{net}") from None
        return value


class EventsSection(Section):
    checkin_opens_minutes_before_start: int = Field(default=120, ge=0, le=7 * 24 * 60)
    checkin_closes_minutes_after_end: int = Field(default=60, ge=0, le=7 * 24 * 60)


class SchedulerSection(Section):
    tick_seconds: float = Field(default=60, gt=0)                  # how often each job looks for due work
    leader_lock_seconds: float = Field(default=30, ge=2)         # a dead leader is replaced within this


class BirthdaySection(Section):
    enabled: bool = True
    send_time: time_of_day = time_of_day(8, 0)
    title: str = "生日快乐"
    body: str = "工会祝您生日快乐，工作顺利，阖家幸福！"


class OccasionSection(Section):
    enabled: bool = True
    lead_days: int = Field(default=1, ge=0, le=30)
    send_time: time_of_day = time_of_day(9, 0)
    title: str
    body: str
    audience: dict[str, Any] = Field(default_factory=dict)    # criteria, see app/services/audiences.py


DEFAULT_OCCASIONS: dict[str, dict] = {
    "new_year": {"title": "元旦问候", "body": "工会祝您新年快乐，万事如意！"},
    "spring_festival": {"lead_days": 3, "title": "春节慰问", "body": "工会恭祝您和家人新春快乐、阖家幸福！"},
    "lantern": {"lead_days": 0, "title": "元宵节快乐", "body": "工会祝您元宵节快乐，团团圆圆！"},
    "womens_day": {"lead_days": 0, "title": "三八妇女节快乐", "body": "工会向全体女教职工致以节日的问候！",
                   "audience": {"genders": ["female"], "statuses": ["active"]}},
    "labour_day": {"title": "五一劳动节问候", "body": "工会向辛勤工作的您致以节日的问候！"},
    "dragon_boat": {"title": "端午安康", "body": "工会祝您端午安康！"},
    "mid_autumn": {"title": "中秋节问候", "body": "工会祝您中秋快乐，花好月圆！"},
    "teachers_day": {"lead_days": 0, "title": "教师节快乐", "body": "工会向全体教职工致以节日的问候！",
                     "audience": {"statuses": ["active"]}},
    "national_day": {"title": "国庆节问候", "body": "工会祝您国庆快乐！"},
    "double_ninth": {"lead_days": 0, "title": "重阳节问候", "body": "工会祝您重阳安康，福寿绵长！",
                     "audience": {"statuses": ["retired"]}},
}


class HolidaysSection(Section):
    occasions: dict[str, OccasionSection] = Field(default_factory=lambda: {
        k: OccasionSection.model_validate(v) for k, v in DEFAULT_OCCASIONS.items()})
    # Statutory days off published after the installed chinese-calendar release:
    # year -> occasion -> [first day off, last day off]
    days_off: dict[str, dict[str, tuple[date, date]]] = Field(default_factory=dict)

    @field_validator("occasions", mode="before")
    @classmethod
    def _known_occasions(cls, value: dict) -> dict:
        unknown = set(value) - set(DEFAULT_OCCASIONS)
        if unknown:
            raise ValueError(f"未知的节日：{'、'.join(sorted(unknown))}（可用：{'、'.join(DEFAULT_OCCASIONS)}）")
        return {k: {**DEFAULT_OCCASIONS[k], **v} for k, v in {**DEFAULT_OCCASIONS, **value}.items()}


class StorageSection(Section):
    path: str = "instance/uploads"        # uploaded files; never served from a public path
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    orphan_grace_seconds: int = Field(default=24 * 3600, ge=60)   # then a file no record references is removed


DEFAULT_CONDOLENCE_RATES: list[dict] = [
    # type, its disclosure label, whom it concerns; then (在职, 退休) standard amount / ceiling per request, in yuan,
    # and times per member per year
    {"name": "本人住院", "label": "住院慰问", "subject": "self", "active": (500, 1000, 2), "retired": (500, 1000, 2)},
    {"name": "本人住院并手术", "label": "住院慰问", "subject": "self", "active": (800, 1500, 2),
     "retired": (800, 1500, 2)},
    {"name": "直系亲属住院", "label": "住院慰问", "subject": "relative", "active": (300, 500, 1),
     "retired": (300, 500, 1)},
    {"name": "直系亲属去世", "label": "丧葬慰问", "subject": "relative", "active": (500, 800, 2),
     "retired": (500, 800, 2)},
    {"name": "本人去世", "label": "丧葬慰问", "subject": "self", "active": (2000, 3000, 1), "retired": (1500, 2000, 1)},
    {"name": "意外事故", "label": "意外慰问", "subject": "self", "active": (500, 1000, 1), "retired": (500, 1000, 1)},
    {"name": "重大疾病", "label": "大病慰问", "subject": "self", "active": (1000, 2000, 1), "retired": (1000, 2000, 1)},
]


class CondolenceTypeSeed(Section):
    name: str = Field(min_length=1, max_length=32)
    label: str = Field(min_length=1, max_length=32)          # what others may see (公示, lists): never the type
    subject: Literal["self", "relative"]
    active: tuple[int, int, int]      # 在职: standard amount (yuan), ceiling per request (yuan), times per year
    retired: tuple[int, int, int]     # 退休: the same


class CondolencesSection(Section):
    """Condolences (慰问): the first rates (copied into the database once, when it holds none; admins change them
    there), who counts as a direct relative, and the filing rules."""

    rates: list[CondolenceTypeSeed] = Field(default_factory=lambda: [
        CondolenceTypeSeed.model_validate(r) for r in DEFAULT_CONDOLENCE_RATES])
    parents_in_law_are_relatives: bool = False       # 配偶父母 count as direct relatives
    file_within_months: int = Field(default=6, ge=1, le=60)   # a request is filed at most this long after the event
    duplicate_window_days: int = Field(default=30, ge=0, le=366)   # the same type for the same member → flagged
    max_attachments: int = Field(default=20, ge=1, le=100)
    payment_cut_off_day: int = Field(default=25, ge=1, le=28)   # a month's batch: approved up to this day's end
    retention_years: int = Field(default=5, ge=1, le=30)   # then a finished request's files and sealed text go
    mutual_aid_plans: list[str] = Field(default_factory=lambda: [
        "在职职工重大疾病互助保障", "住院医疗互助保障", "女职工特殊疾病互助保障"], min_length=1)   # the city's plans


class ProposalsSection(Section):
    """Staff-congress proposals (教代会提案): seconds needed, handling deadlines, reminders and satisfaction."""

    min_seconds: int = Field(default=2, ge=0, le=100)          # 附议人数: fewer at the window's close → 未达附议人数
    handling_months: int = Field(default=3, ge=1, le=24)       # default deadline of a 交办, from the day assigned
    return_within_days: int = Field(default=5, ge=0, le=60)    # a department may 退办 this many days after 交办
    reminder_offsets: list[int] = Field(default_factory=lambda: [-7, 0, 7, 14], min_length=1)   # days from deadline
    reminder_time: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")   # Beijing time
    max_rounds: int = Field(default=2, ge=1, le=10)            # 不满意 sends it back until this many rounds
    rate_within_days: int = Field(default=15, ge=1, le=180)    # then it closes as 未评价

    @field_validator("reminder_offsets")
    @classmethod
    def _offsets(cls, value: list[int]) -> list[int]:
        if any(abs(v) > 365 for v in value):
            raise ValueError("提醒时间必须在截止日期前后 365 天以内")
        return sorted(set(value))


DEMO_PRIVACY_KEY = "ZGVtby1vbmx5LWtleS1kby1ub3QtdXNlLWluLXByb2Q="   # 32 bytes, public: the SQLite demo only


class PrivacySection(Section):
    """Keys of the encryption at rest (app.services.sealing): key id -> 32 random bytes in base64. `current_key`
    encrypts; every listed key decrypts, so a rotation adds a key, makes it current, re-encrypts
    (`smart-union privacy rekey`) and only then drops the old one."""

    keys: dict[str, str] = Field(default_factory=lambda: {"demo": DEMO_PRIVACY_KEY})
    current_key: str = "demo"

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("至少需要一个密钥")
        for key_id, key in value.items():
            if not key_id.isascii() or not key_id.isalnum() or len(key_id) > 16:
                raise ValueError(f"密钥编号只能是不超过 16 位的字母和数字：{key_id!r}")
            try:
                raw = base64.b64decode(key, validate=True)
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise ValueError(f"密钥 {key_id} 必须是 32 字节随机数的 base64（可用 smart-union privacy new-key 生成）")
        return value

    @model_validator(mode="after")
    def _current_is_listed(self):
        if self.current_key not in self.keys:
            raise ValueError(f"current_key {self.current_key!r} 不在 keys 中")
        return self


class DemoSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=0, le=65535)
    fake_wechat_port: int = Field(default=5001, ge=0, le=65535)    # its page: what WeChat would deliver


class Config(Section):
    app: AppSection = AppSection()
    database: DatabaseSection = DatabaseSection()
    redis: RedisSection = RedisSection()
    wechat: WeChatSection = WeChatSection()
    auth: AuthSection = AuthSection()
    limits: LimitsSection = LimitsSection()
    notifications: NotificationsSection = NotificationsSection()
    events: EventsSection = EventsSection()
    metrics: MetricsSection = MetricsSection()
    vouchers: VouchersSection = VouchersSection()
    scheduler: SchedulerSection = SchedulerSection()
    birthdays: BirthdaySection = BirthdaySection()
    holidays: HolidaysSection = HolidaysSection()
    storage: StorageSection = StorageSection()
    condolences: CondolencesSection = CondolencesSection()
    proposals: ProposalsSection = ProposalsSection()
    privacy: PrivacySection = PrivacySection()
    demo: DemoSection = DemoSection()


DEFAULT_SECRET_KEY = AppSection.model_fields["secret_key"].default
EMBEDDED_DATABASE_FILE = DatabaseSection.model_fields["url"].default.split("///", 1)[1]    # instance/smart-union.db


def _check_secret(cfg: "Config") -> None:
    """Tokens, check-in codes and bind codes are signed with app.secret_key: the public default is for the
    embedded SQLite demo only."""
    if cfg.database.url.startswith("sqlite"):
        return
    if cfg.app.secret_key == DEFAULT_SECRET_KEY or len(cfg.app.secret_key) < 32:
        raise ConfigError("配置错误：app.secret_key：使用数据库服务器时必须设置至少 32 位的随机密钥"
                          "（可用环境变量 SMART_UNION__APP__SECRET_KEY）")


def _check_privacy_key(cfg: "Config") -> None:
    if not cfg.database.url.startswith("sqlite") and DEMO_PRIVACY_KEY in cfg.privacy.keys.values():
        raise ConfigError("配置错误：privacy.keys：使用数据库服务器时必须设置自己的加密密钥，不能使用公开的演示密钥"
                          "（smart-union privacy new-key 生成；可用环境变量 SMART_UNION__PRIVACY__KEYS）")


def _check_clock(cfg: "Config") -> None:
    if cfg.app.clock_file and not (cfg.app.testing or cfg.database.url.startswith("sqlite")):
        raise ConfigError("配置错误：app.clock_file：只能在测试或内置演示中使用，生产环境请留空")


def load_config(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None,
                overrides: dict[str, Any] | None = None) -> Config:
    """Defaults < TOML file < environment < overrides (used by tests and the demo)."""
    environ = os.environ if environ is None else environ
    path = path or environ.get(CONFIG_PATH_ENV)
    data: dict[str, Any] = _read_toml(Path(path)) if path else {}
    for key, raw in environ.items():
        if key.startswith(ENV_PREFIX):
            _set_dotted(data, key[len(ENV_PREFIX):].lower().split("__"), _parse_env_value(raw))
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted.split("."), value)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    _check_secret(cfg)
    _check_privacy_key(cfg)
    _check_clock(cfg)
    return _anchored(cfg, Path(environ.get(HOME_ENV) or REPOSITORY))


def _anchored(cfg: "Config", home: Path) -> "Config":
    """Relative paths — the embedded SQLite file, the embedded Redis, stored files — are under the home directory
    (SMART_UNION_HOME, by default the repository), wherever a command is run from."""
    def under_home(path: str) -> str:
        return path if Path(path).is_absolute() else str(home / path)

    url = cfg.database.url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        url = "sqlite:///" + under_home(url.split("///", 1)[1])
    return cfg.model_copy(update={
        "database": cfg.database.model_copy(update={"url": url}),
        "redis": cfg.redis.model_copy(update={"embedded_path": under_home(cfg.redis.embedded_path)}),
        "storage": cfg.storage.model_copy(update={"path": under_home(cfg.storage.path)})})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"配置错误：找不到配置文件 {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"配置错误：{path} 不是合法的 TOML（{exc}）") from None


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _set_dotted(data: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        node = data.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"配置错误：{'.'.join(parts)}：{part} 不是配置段")
        data = node
    data[parts[-1]] = value


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"配置错误：{key}：未知的配置项"
    return f"配置错误：{key}：{err['msg']}（当前值 {err.get('input')!r}）"
