"""The chat view alone, without a model: where the transcript stays while an answer streams, what its buttons allow,
how a stopped answer shows, and whose the text in the input box and an edit in progress are."""
import pytest
from PySide6.QtCore import QUrl

from wren.gui.chat_view import ChatView

pytestmark = pytest.mark.gui


def conversation(turns: int, start_id: int = 1) -> list[dict]:
    out = []
    for i in range(turns):
        out.append({"id": start_id + 2 * i, "role": "user", "content": f"Question {i}?", "complete": True})
        out.append({"id": start_id + 2 * i + 1, "role": "assistant", "complete": True,
                    "content": "\n\n".join(f"Answer {i}, paragraph {p}." for p in range(4))})
    return out


@pytest.fixture
def view(qtbot):
    v = ChatView()
    qtbot.addWidget(v)
    v.resize(600, 400)
    v.show()
    qtbot.waitExposed(v)
    return v


def stream(view: ChatView, pieces: list[str]) -> None:
    """Tokens as the window hands them over, each batch drawn as the stream timer would draw it."""
    for piece in pieces:
        view.add_token(piece)
        view.stream._tick()


def test_streaming_keeps_the_place_the_user_scrolled_to(view):
    view.show_conversation(1, conversation(8) + [{"id": 99, "role": "user", "content": "More?", "complete": True}])
    bar = view.transcript.verticalScrollBar()
    assert bar.maximum() > 200
    bar.setValue(bar.maximum() // 2)  # the user scrolled up to read
    place = bar.value()
    view.begin_answer()
    stream(view, [f"word{i} " for i in range(30)] + ["\n\nA new paragraph."])
    assert bar.value() == place
    view.end_answer(view.messages[:-1] + [{"id": 100, "role": "assistant", "content": "Done.", "complete": True}])
    assert bar.value() == place


def test_streaming_follows_the_end_when_the_user_is_there(view):
    view.show_conversation(1, conversation(8) + [{"id": 99, "role": "user", "content": "More?", "complete": True}])
    bar = view.transcript.verticalScrollBar()
    bar.setValue(bar.maximum())
    view.begin_answer()
    for i in range(20):
        stream(view, [f"Line {i} of a long answer.\n\n"])
        assert bar.value() == bar.maximum() > 0


def test_a_stopped_answer_is_marked_also_when_it_is_the_last(view):
    msgs = conversation(1)
    msgs[-1]["complete"] = False
    view.show_conversation(1, msgs)
    assert "(stopped)" in view.transcript.toPlainText()
    view.begin_answer()  # an answer still streaming is not stopped
    stream(view, ["Partial"])
    assert view.transcript.toPlainText().count("(stopped)") == 1


def test_regenerate_is_there_when_there_is_a_question_to_answer(view):
    view.show_conversation(None, [])
    assert not view.regen.isEnabled() and not view.copy.isEnabled()
    view.show_conversation(1, conversation(2))  # a conversation opened again, with answers
    assert view.regen.isEnabled() and view.copy.isEnabled()
    view.set_busy(True)
    assert not view.regen.isEnabled() and view.stop.isEnabled()
    view.set_busy(False)
    # stopped before the first token: the question stands unanswered, and can be asked again as it is
    view.show_conversation(2, [{"id": 7, "role": "user", "content": "Why?", "complete": True}])
    assert view.regen.isEnabled() and not view.copy.isEnabled()
    view.show_conversation(None, [])
    assert not view.regen.isEnabled()


def test_an_edit_belongs_to_its_conversation(view, qtbot):
    view.show_conversation(1, conversation(2))
    view.input.setPlainText("half a thought")
    view._anchor(QUrl("edit:1"))
    assert view.editing == 1 and view.input.toPlainText() == "Question 0?" and view.edit_label.isVisibleTo(view)
    view.input.setPlainText("Question 0, better?")
    view.show_conversation(2, conversation(1, start_id=10))  # another conversation: no edit, its own input
    assert view.editing is None and not view.edit_label.isVisibleTo(view) and view.input.toPlainText() == ""
    with qtbot.waitSignal(view.sendRequested) as sent:
        view.input.setPlainText("A new question")
        view.send.click()
    assert sent.args == ["A new question", None]
    view.sent(2)
    assert view.input.toPlainText() == ""
    view.show_conversation(1, conversation(2))  # back: the edit as it was left
    assert view.editing == 1 and view.input.toPlainText() == "Question 0, better?"
    view.cancel_edit.click()  # what was typed before the edit comes back
    assert view.editing is None and view.input.toPlainText() == "half a thought"


def test_the_input_is_kept_until_the_window_takes_the_message(view, qtbot):
    view.show_conversation(None, [])
    view.input.setPlainText("Hello there")
    with qtbot.waitSignal(view.sendRequested):
        view.send.click()
    assert view.input.toPlainText() == "Hello there"  # a send that fails loses nothing
    view.sent(5)  # taken: it is conversation 5's first message
    assert view.input.toPlainText() == ""
    view.input.setPlainText("next")
    view.show_conversation(None, [])
    assert view.input.toPlainText() == ""
    view.show_conversation(5, conversation(1, start_id=20))
    assert view.input.toPlainText() == "next"
    view.forget(5)  # deleted
    view.show_conversation(None, [])
    view.show_conversation(5, [])
    assert view.input.toPlainText() == ""
