"""The assistant modes, one module each: chat (a conversation, its session and its record), email (draft and refine),
reply (three short replies) and summarize (text of any length); common holds what they share."""
from wren.engine.settings import MODES  # the one list (settings keep sampling defaults per mode)

MODE_LABELS = dict(zip(MODES, ("Chat", "Draft email", "Smart reply", "Summarize")))

from wren.engine.assistant.chat import ChatController  # noqa: E402
from wren.engine.assistant.common import ModeError  # noqa: E402
from wren.engine.assistant.email import EmailDraft, draft_email, refine_email  # noqa: E402
from wren.engine.assistant.reply import SmartReplies, smart_reply  # noqa: E402
from wren.engine.assistant.summarize import Summary, summarize  # noqa: E402

__all__ = ["MODES", "MODE_LABELS", "ChatController", "EmailDraft", "ModeError", "SmartReplies", "Summary",
           "draft_email", "refine_email", "smart_reply", "summarize"]
