"""Telegram updates → engine events. Nothing here decides anything."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import ChatMember, Update

from bot.engine import Blocked, Button, Command, Event, NonText, Start, Text

#: Message attributes that make a message something other than text, with their kind.
_NON_TEXT = (
    "photo", "sticker", "voice", "video", "video_note", "audio", "document", "animation",
    "location", "venue", "contact", "poll", "dice", "game", "story",
)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One update, turned into what the service needs.

    Attributes:
        client_id: ``tg:<user id>``.
        chat_id: The private chat to answer in.
        event_id: ``tg:<update id>``, the dedup key.
        event: The engine event.
        free_text: Everything the person wrote (a message, the words after a command, a
            caption, an edited text) for the access gate's crisis scan; never stored.
    """

    client_id: str
    chat_id: int
    event_id: str
    event: Event
    free_text: str = ""


def client_key(user_id: int) -> str:
    """The store key of a Telegram user."""
    return f"tg:{user_id}"


def convert(update: Update) -> Incoming | None:
    """The event an update means, or None for updates the bot ignores."""
    user = update.effective_user
    chat = update.effective_chat
    if user is None or chat is None or user.is_bot:
        return None
    name, language = user.first_name, user.language_code
    event: Event
    text = ""
    if update.my_chat_member is not None:
        status = update.my_chat_member.new_chat_member.status
        if status not in (ChatMember.BANNED, ChatMember.LEFT):
            return None
        event = Blocked()
    elif update.callback_query is not None:
        event = Button(data=update.callback_query.data or "", display_name=name,
                       language=language)
    elif update.edited_message is not None:
        # An edit is never an answer, but its new words are scanned like any message.
        edited = update.edited_message
        text = edited.text or edited.caption or ""
        event = NonText(kind="edit", text=text, display_name=name, language=language)
    elif update.message is not None:
        message = update.message
        if message.text is None:
            text = message.caption or ""
            kind = next((k for k in _NON_TEXT if getattr(message, k, None)), "other")
            event = NonText(kind=kind, text=text, display_name=name, language=language)
        else:
            text = message.text
            event = _text_event(text, name, language)
    else:
        return None
    return Incoming(client_key(user.id), chat.id, f"tg:{update.update_id}", event, text)


def _text_event(text: str, name: str, language: str | None) -> Event:
    if text.startswith("/") and len(text) > 1 and not text[1].isspace():
        command, _, args = text[1:].partition(" ")
        command = command.split("@", 1)[0].lower()
        if command == "start":
            return Start(payload=args.strip() or None, display_name=name, language=language)
        return Command(name=command, args=args.strip(), display_name=name, language=language)
    return Text(text=text, display_name=name, language=language)
